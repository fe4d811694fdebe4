#include "db/sqlite/sqlite_copy.h"

#include <chrono>
#include <filesystem>

#include "db/scratch_dir.h"

namespace sluice::db {

Result<ScratchCopy> SqliteScratchCopy(Connection& conn, const ScratchCopyRequest& request) {
  const auto t0 = std::chrono::steady_clock::now();
  SLUICE_ASSIGN_OR_RETURN(std::string dir, MakeScratchDir(request.label));
  const std::string path = dir + "/copy.db";
  Status copied = conn.CopyDatabaseTo(path, request.cancel);
  if (!copied.ok()) {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    if (copied.code() == StatusCode::kCancelled) return Cancelled(kScratchCopyCancelled);
    return copied;
  }
  ScratchCopy out;
  out.url = out.display_url = "sqlite:" + path;
  out.name = dir;
  out.method = "sqlite backup";
  if (request.sample > 0 && request.sample < 1) out.notes.push_back("--sample does not apply: the whole file is copied");
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

Status DropSqliteScratchCopy(const ScratchCopy& copy, bool keep) {
  if (copy.name.empty()) return Status::Ok();
  if (keep) return MarkScratchDirKept(copy.name);
  std::error_code ec;
  std::filesystem::remove_all(copy.name, ec);
  if (ec) return Unavailable("cannot remove the copy '" + copy.name + "': " + ec.message());
  return Status::Ok();
}

}  // namespace sluice::db
