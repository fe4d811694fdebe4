// `sluice demo`: a complete zero-downtime migration on a SQLite database,
// with an old application version writing through the old schema during
// every phase and a new version writing through the new one after the
// switch. Uses only the public API.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace sluice::cli {

struct DemoOptions {
  std::string db_url;      // default sqlite:sluice-demo.db
  int64_t rows = 200000;
  bool keep = true;
  const std::atomic<bool>* cancel = nullptr;
};

// Returns the process exit code (0 when every check passed).
int RunDemo(const DemoOptions& options);

}  // namespace sluice::cli
