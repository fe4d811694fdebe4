#include "support/lifecycle.h"

#include <algorithm>

namespace sluice::testing {

namespace {

std::string PlanFile(const TempDir& dir, const OperationCase& c) { return dir.Write(c.name + ".yaml", c.plan); }

void Setup(Migrator& m, const OperationCase& c) {
  auto s = m.Connect("");
  ASSERT_TRUE(s.ok()) << s.status().message();
  if (!c.setup.empty()) SLUICE_ASSERT_OK((*s)->Exec(c.setup));
}

void Writes(Migrator& m, const std::string& version, const std::vector<std::string>& writes) {
  if (writes.empty()) return;
  auto s = m.Connect(version);
  ASSERT_TRUE(s.ok()) << "connecting to version '" << version << "': " << s.status().message();
  for (const auto& w : writes) {
    auto r = (*s)->Query(w);
    EXPECT_TRUE(r.ok()) << "write through version '" << (version.empty() ? "old" : version) << "' failed: " << w
                        << "\n  " << r.status().message();
  }
}

// True when `migration`'s new version is usable now (its backfill is done or
// it needs none). When it is not, a session on it must be refused, naming
// the reason: the new version never shows a value the backfill would not.
bool NewVersionReady(Migrator& m, const std::string& migration) {
  auto list = m.List();
  EXPECT_TRUE(list.ok()) << list.status().message();
  if (!list.ok()) return false;
  for (const auto& i : *list) {
    if (i.name != migration) continue;
    if (i.version_ready) return true;
    auto s = m.Connect(i.version);
    EXPECT_FALSE(s.ok()) << "a session on version " << i.version << " before its backfill was not refused";
    if (!s.ok()) {
      EXPECT_THAT(s.status().message(), ::testing::HasSubstr("is not ready"));
    }
    return false;
  }
  ADD_FAILURE() << "no migration " << migration;
  return false;
}

// Old-version writes right after start; new-version writes as soon as the
// new version is usable: at once when nothing needs a backfill, else after
// it (the backfill runs here then).
void WritesAroundBackfill(Migrator& m, const OperationCase& c) {
  Writes(m, "", c.old_writes);
  if (!NewVersionReady(m, c.name)) {
    auto bf = m.Backfill(c.name, {});
    ASSERT_TRUE(bf.ok()) << bf.status().message();
  }
  Writes(m, c.name, c.new_writes);
}

}  // namespace

std::string DataFingerprint(Migrator& m, const std::vector<std::string>& tables) {
  std::string out;
  for (const auto& t : tables) {
    auto rows = QueryRows(m, "SELECT * FROM \"" + t + "\" ORDER BY 1");
    out += "## " + t + "\n";
    for (const auto& r : rows) {
      for (const auto& v : r) out += v + "|";
      out += "\n";
    }
  }
  return out;
}

void ExpectAll(Migrator& m, const std::string& version, const std::vector<Expect>& expects, const std::string& when) {
  for (const auto& e : expects) {
    std::string v = e.version == "new" ? version : "";
    EXPECT_EQ(QueryValue(m, e.sql, v), e.value) << when << ", through the " << e.version << " version: " << e.sql;
  }
}

void RunForward(const Backend& b, const OperationCase& c, const TempDir& dir) {
  SCOPED_TRACE(b.name + " forward: " + c.name);
  auto m = b.open();
  ASSERT_TRUE(m);
  ASSERT_NO_FATAL_FAILURE(Setup(*m, c));
  std::string plan = PlanFile(dir, c);
  SLUICE_ASSERT_OK(m->Start(plan));
  // Start again with the same text converges (no error, no change).
  SLUICE_ASSERT_OK(m->Start(plan));
  ASSERT_NO_FATAL_FAILURE(WritesAroundBackfill(*m, c));
  ExpectAll(*m, c.name, c.during, "after start");
  auto bf = m->Backfill(c.name, {});
  ASSERT_TRUE(bf.ok()) << bf.status().message();
  auto v = m->Verify(c.name);
  ASSERT_TRUE(v.ok()) << v.status().message();
  EXPECT_TRUE(v->passed) << v->json;
  SLUICE_ASSERT_OK(m->Complete(c.name));
  ExpectAll(*m, c.name, c.after, "after complete");
  auto list = m->List();
  ASSERT_TRUE(list.ok());
  ASSERT_FALSE(list->empty());
  EXPECT_EQ(list->back().phase, "complete");
}

void RunRollback(const Backend& b, const OperationCase& c, const TempDir& dir) {
  SCOPED_TRACE(b.name + " rollback: " + c.name);
  auto m = b.open();
  ASSERT_TRUE(m);
  ASSERT_NO_FATAL_FAILURE(Setup(*m, c));
  std::string plan = PlanFile(dir, c);
  std::string schema_before = b.schema_fingerprint(*m);
  std::string data_before = DataFingerprint(*m, c.tables);

  // (a) start -> rollback: exactly as before.
  SLUICE_ASSERT_OK(m->Start(plan));
  bool noop = std::find(c.start_changes_nothing_on.begin(), c.start_changes_nothing_on.end(), b.name) !=
              c.start_changes_nothing_on.end();
  if (noop) {
    EXPECT_EQ(b.schema_fingerprint(*m), schema_before);
  } else {
    EXPECT_NE(b.schema_fingerprint(*m), schema_before) << "start changed nothing?";
  }
  SLUICE_ASSERT_OK(m->Rollback(c.name));
  EXPECT_EQ(b.schema_fingerprint(*m), schema_before);
  EXPECT_EQ(DataFingerprint(*m, c.tables), data_before);

  // (b) start -> writes through both versions -> backfill -> rollback: the
  // schema is back and every write is kept, in the old shape.
  SLUICE_ASSERT_OK(m->Start(plan));
  ASSERT_NO_FATAL_FAILURE(WritesAroundBackfill(*m, c));
  auto bf = m->Backfill(c.name, {});
  ASSERT_TRUE(bf.ok()) << bf.status().message();
  SLUICE_ASSERT_OK(m->Rollback(c.name));
  EXPECT_EQ(b.schema_fingerprint(*m), schema_before);
  std::vector<Expect> old_view;
  for (const auto& e : c.during) {
    if (e.version == "old" && c.writes_survive_rollback) old_view.push_back(e);
  }
  ExpectAll(*m, c.name, old_view, "after rollback");
  if (c.old_writes.empty() && c.new_writes.empty()) {
    EXPECT_EQ(DataFingerprint(*m, c.tables), data_before);
  }

  // (c) start again -> backfill -> verify -> complete (the gates need a
  // verification after the backfill).
  SLUICE_ASSERT_OK(m->Start(plan));
  bf = m->Backfill(c.name, {});
  ASSERT_TRUE(bf.ok()) << bf.status().message();
  auto v = m->Verify(c.name);
  ASSERT_TRUE(v.ok()) << v.status().message();
  EXPECT_TRUE(v->passed) << v->json;
  SLUICE_ASSERT_OK(m->Complete(c.name));
}

}  // namespace sluice::testing
