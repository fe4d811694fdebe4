// `sluice serve` as a child process for the command-center tests: started
// on a free loopback port (--listen 127.0.0.1:0; the port is read from its
// first line of output), stopped with SIGTERM.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "support/test_support.h"

namespace sluice::testing {

// The first line of `path` matching "listening on http://HOST:PORT/": the
// port, or -1.
inline int ListeningPort(const std::string& path) {
  std::string text = ReadFile(path);
  auto at = text.find("listening on http://");
  if (at == std::string::npos) return -1;
  auto colon = text.find(':', at + 20);
  auto slash = text.find('/', colon);
  if (colon == std::string::npos || slash == std::string::npos) return -1;
  return std::stoi(text.substr(colon + 1, slash - colon - 1));
}

class ServeProcess {
 public:
  // `args` after `serve`; global flags (--db ...) first in `global`.
  ServeProcess(const std::vector<std::string>& global, const std::vector<std::string>& args) {
    std::vector<std::string> all = global;
    all.push_back("serve");
    bool has_listen = false;
    for (const auto& a : args) has_listen |= a == "--listen";
    if (!has_listen) all.insert(all.end(), {"--listen", "127.0.0.1:0"});
    all.insert(all.end(), args.begin(), args.end());
    pid_ = SpawnSluice(all, dir_.path());
    // Wait (bounded) for the bound port to be printed.
    for (int i = 0; i < 200 && pid_ > 0 && port_ < 0; ++i) {
      port_ = ListeningPort(dir_.File("spawn.out"));
      if (port_ < 0) {
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
          pid_ = -1;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
  }
  ~ServeProcess() { Stop(); }
  int Stop() {
    if (pid_ <= 0) return exit_code_;
    ::kill(pid_, SIGTERM);
    exit_code_ = WaitProcess(pid_);
    pid_ = -1;
    return exit_code_;
  }
  int port() const { return port_; }
  bool running() const { return pid_ > 0 && port_ > 0; }
  std::string out() const { return ReadFile(dir_.File("spawn.out")); }
  std::string err() const { return ReadFile(dir_.File("spawn.err")); }

 private:
  TempDir dir_;
  int pid_ = -1;
  int port_ = -1;
  int exit_code_ = -1;
};

}  // namespace sluice::testing
