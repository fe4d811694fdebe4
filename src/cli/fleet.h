// `sluice fleet apply | status | rollback` (docs/fleets.md): the verbs'
// definitions and their runs, kept out of main.cc, which adds them and
// dispatches with one call each.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "serve/serve.h"
#include "sluice/sluice.h"

namespace CLI {
class App;
}

namespace sluice::cli {

// `sluice serve --inventory FILE [--ledger URL]`: reads the fleet's view on
// each request (the ledger read-only: serving creates no state). An error
// when the inventory is unusable.
Result<std::function<Result<serve::FleetView>()>> ServeFleetView(const std::string& inventory,
                                                                  const std::string& ledger, const Options& options);

class FleetCommands {
 public:
  // Adds `fleet` and its verbs to `app`.
  explicit FleetCommands(CLI::App& app);
  ~FleetCommands();
  bool parsed() const;
  // Runs the parsed verb with the global options; `fail` prints an error
  // Status and returns its exit code (main.cc's convention).
  int Run(const Options& options, const std::atomic<bool>* cancel,
          const std::function<int(const Status&)>& fail);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::cli
