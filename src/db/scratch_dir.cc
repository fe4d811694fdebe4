#include "db/scratch_dir.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace sluice::db {

namespace fs = std::filesystem;

namespace {

// The pid in `name` (sluice-rehearsal-<label>-<pid>-XXXXXX); 0 when none.
pid_t OwnerPid(const std::string& name) {
  const size_t last = name.rfind('-');
  if (last == std::string::npos || last == 0) return 0;
  const size_t before = name.rfind('-', last - 1);
  if (before == std::string::npos || before + 1 >= last) return 0;
  const std::string digits = name.substr(before + 1, last - before - 1);
  for (char c : digits) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return 0;
  }
  if (digits.size() > 9) return 0;
  return static_cast<pid_t>(std::stol(digits));
}

bool Alive(pid_t pid) { return kill(pid, 0) == 0 || errno == EPERM; }

constexpr const char* kKeptMarker = "KEPT";

}  // namespace

std::string CleanScratchLabel(const std::string& label, size_t max) {
  std::string clean;
  for (char ch : label.substr(0, max)) {
    const auto c = static_cast<unsigned char>(ch);
    clean += std::isalnum(c) ? static_cast<char>(std::tolower(c)) : '_';
  }
  return clean;
}

Result<std::string> MakeScratchDir(const std::string& label) {
  const std::string clean = CleanScratchLabel(label, 40);
  std::error_code ec;
  const fs::path tmp = fs::temp_directory_path(ec);
  if (ec) return Unavailable("no temporary directory for the rehearsal: " + ec.message());
  std::string dir =
      (tmp / (std::string(kScratchDirPrefix) + clean + "-" + std::to_string(getpid()) + "-XXXXXX")).string();
  if (!mkdtemp(dir.data())) {
    return Unavailable("cannot create a temporary directory in " + tmp.string() + ": " + std::strerror(errno));
  }
  return dir;
}

Status MarkScratchDirKept(const std::string& dir) {
  std::ofstream marker(fs::path(dir) / kKeptMarker);
  marker << "kept by `sluice rehearse --keep`; remove this directory by hand when done\n";
  marker.close();
  if (!marker) return Unavailable("cannot mark " + dir + " as kept");
  return Status::Ok();
}

std::vector<std::string> DropLeftoverScratchDirs() {
  std::vector<std::string> out;
  std::error_code ec;
  const fs::path tmp = fs::temp_directory_path(ec);
  if (ec) return out;
  // Not a range-for: its increment would throw on an I/O error.
  for (fs::directory_iterator it(tmp, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::directory_entry& e = *it;
    const std::string name = e.path().filename().string();
    std::error_code type;
    if (name.rfind(kScratchDirPrefix, 0) != 0 || !e.is_directory(type)) continue;
    const pid_t pid = OwnerPid(name);
    if (pid <= 0 || Alive(pid) || fs::exists(e.path() / kKeptMarker, type)) continue;
    std::error_code rm;
    fs::remove_all(e.path(), rm);
    out.push_back(rm ? "could not remove " + e.path().string() + ": " + rm.message()
                     : "removed " + e.path().string() + ", left behind by an interrupted rehearsal (pid " +
                           std::to_string(pid) + ")");
  }
  return out;
}

}  // namespace sluice::db
