// `sluice diff` stops on the first SIGTERM (issue 8, item 11: a long diff
// ignored the first SIGTERM and ran on for minutes). (a) Two real
// PostgreSQL databases with a table large enough, at 10-row chunks, to keep
// diff busy for far longer than the test waits; (b) the real binary starts
// and is seen querying; (c) one SIGTERM; (d) it exits with the cancelled
// status (130) well within a generous deadline, instead of finishing the
// comparison (exit 0/3) or being killed by the test.
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <thread>

#include "support/pg_cluster.h"
#include "support/test_support.h"

namespace sluice::testing {
namespace {

using namespace std::chrono_literals;

// Waits for `pid` to exit until `deadline`; -1 when it did not (then it is
// killed and reaped).
int WaitUntil(int pid, std::chrono::steady_clock::time_point deadline) {
  int status = 0;
  for (;;) {
    if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(20ms);
  }
}

TEST(DiffCancel, FirstSigtermStopsALongDiff) {
  PgCluster* pg = PgCluster::Shared();
  SLUICE_ASSERT_PG_OK(pg);
  std::string a = pg->CreateDatabase("cancel_a");
  std::string b = pg->CreateDatabase("cancel_b");
  for (const auto& url : {a, b}) {
    pg->Psql(url, "CREATE TABLE big (id integer PRIMARY KEY, v text); INSERT INTO big SELECT i, 'v' || i FROM "
                  "generate_series(1, 300000) AS i;");
  }
  TempDir io;
  int pid = SpawnSluice({"diff", "--source", a, "--target", b, "--table", "big", "--chunk-rows", "10"}, io.path());
  ASSERT_GT(pid, 0);
  // Running: one of its sessions is on the server.
  std::string seen;
  auto until = std::chrono::steady_clock::now() + 60s;
  while (seen != "t" && std::chrono::steady_clock::now() < until) {
    seen = pg->Psql("postgres", "SELECT count(*) > 0 FROM pg_stat_activity WHERE application_name LIKE 'sluice pid " +
                                    std::to_string(pid) + " %'");
    if (seen != "t") std::this_thread::sleep_for(20ms);
  }
  ASSERT_EQ(seen, "t") << "sluice diff never connected: " << ReadFile(io.File("spawn.err"));
  ASSERT_EQ(kill(pid, SIGTERM), 0);
  auto t0 = std::chrono::steady_clock::now();
  int code = WaitUntil(pid, t0 + 60s);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::string err = ReadFile(io.File("spawn.err"));
  ASSERT_NE(code, -1) << "sluice diff ignored SIGTERM for 60 s: " << err;
  EXPECT_EQ(code, 130) << err;
  EXPECT_NE(err.find("cancelled"), std::string::npos) << err;
  RecordProperty("seconds_to_exit_after_sigterm", std::to_string(seconds));
}

}  // namespace
}  // namespace sluice::testing
