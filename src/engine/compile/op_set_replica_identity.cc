// set_replica_identity.
#include "engine/compile/compiler.h"

namespace sluice::engine::internal {

void Compiler::Op(const plan::SetReplicaIdentity& op) {
  VTable* t = RequireTable(op.table, true, true);
  if (!t) return;
  if (op.type == "INDEX") {
    const db::IndexInfo* idx = schema_.FindIndex(op.index.value);
    if (!idx || idx->table != t->physical) {
      Error(op.index.loc, "index '" + op.index.value + "' does not exist on table '" + t->logical + "'",
            StatusCode::kNotFound);
      return;
    }
  }
  std::string old = "DEFAULT";
  std::string old_index;
  if (t->info) {
    const std::string& ri = t->info->replica_identity;
    if (ri == "f") old = "FULL";
    if (ri == "n") old = "NOTHING";
    if (ri == "i") {
      old = "INDEX";
      old_index = t->info->replica_identity_index;
    }
  }
  touched_.insert(t->physical);
  Start(db::SetReplicaIdentityStep{t->physical, op.type, op.index.value},
        db::SetReplicaIdentityStep{t->physical, old, old_index});
}

}  // namespace sluice::engine::internal
