// sluice::Status and sluice::Result<T>: how every fallible sluice call reports
// its outcome. Nothing throws across the public API or the adapter interface.
//
// A Status is either OK (cheap: no allocation) or carries a code, a message and
// an optional detail (the SQLSTATE or SQLite extended result code). Codes are
// chosen by what the caller must do next:
//
//   kInvalidPlan         fix the plan file (message names file:line:col)
//   kInvalidArgument     fix the command line or the call
//   kNotFound            a table, column, migration or file does not exist
//   kAlreadyExists       the object or migration is already there
//   kFailedPrecondition  stop: an operator must act (gate failed, no usable
//                        key, wrong phase, lock not obtained)
//   kUnavailable         connection lost: reconnect and retry with backoff
//   kAborted             serialization failure / deadlock: retry the txn
//   kInDoubt             a COMMIT's outcome is unknown: re-read the
//                        checkpoint before retrying
//   kCancelled           the user asked to stop (Ctrl-C, pause)
//   kInternal            a bug in sluice
//   kResourceExhausted   the server is out of something (disk, memory,
//                        connections): back off and retry, or free it
//   kPermissionDenied    the role lacks a privilege: grant it (the message
//                        names what), retrying will not help
//
// Retryable (the same operation may succeed later, with backoff and a
// bound): kUnavailable (after reconnecting), kAborted (the whole
// transaction), kResourceExhausted (back off longer), kInDoubt (only after
// re-reading what the COMMIT would have written). Everything else needs a
// change first (plan, argument, privilege, operator action) and must not be
// retried as is. Database errors: kAborted also covers a statement timeout
// (message "statement timed out", SQLSTATE 57014); kCancelled means a
// cancel from outside. The sluice command maps each class to its own exit
// code (docs/cli.md "Exit codes": 5 = retry later, 6 = permission, 7 =
// operator must act, 2 = bad argument, 1 = fix the plan/name or a bug).
//
// Thread-safety: a Status is a value; copies are independent.
//
//   sluice::Status s = DoThing();
//   if (!s.ok()) { std::cerr << s.ToString() << "\n"; return 1; }
//   sluice::Result<int> r = Count();
//   if (r.ok()) use(*r); else report(r.status());
#pragma once

#include <cassert>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace sluice {

enum class StatusCode {
  kOk = 0,
  kInvalidPlan,
  kInvalidArgument,
  kNotFound,
  kAlreadyExists,
  kFailedPrecondition,
  kUnavailable,
  kAborted,
  kInDoubt,
  kCancelled,
  kInternal,
  // Appended: values above stay stable for library users.
  kResourceExhausted,
  kPermissionDenied,
};

// Short lowercase name of a code ("invalid plan", "unavailable", ...).
std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message, std::string detail = {});

  static Status Ok() { return Status(); }

  bool ok() const { return rep_ == nullptr; }
  StatusCode code() const { return rep_ ? rep_->code : StatusCode::kOk; }
  const std::string& message() const;
  // Database-specific detail: SQLSTATE on PostgreSQL, extended result code
  // name on SQLite. Empty when not applicable.
  const std::string& detail() const;

  // "message" for an OK-less status; "ok" for OK.
  std::string ToString() const;

  // Returns a copy whose message is "prefix: message".
  Status WithContext(std::string_view prefix) const;

  // Marks a status as ignored on purpose (e.g. best-effort cleanup).
  void IgnoreError() const {}

 private:
  struct Rep {
    StatusCode code;
    std::string message;
    std::string detail;
  };
  std::shared_ptr<const Rep> rep_;
};

inline Status InvalidPlan(std::string m) { return {StatusCode::kInvalidPlan, std::move(m)}; }
inline Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status AlreadyExists(std::string m) { return {StatusCode::kAlreadyExists, std::move(m)}; }
inline Status FailedPrecondition(std::string m) {
  return {StatusCode::kFailedPrecondition, std::move(m)};
}
inline Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status Aborted(std::string m) { return {StatusCode::kAborted, std::move(m)}; }
inline Status InDoubt(std::string m) { return {StatusCode::kInDoubt, std::move(m)}; }
inline Status Cancelled(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }
inline Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
inline Status ResourceExhausted(std::string m) { return {StatusCode::kResourceExhausted, std::move(m)}; }
inline Status PermissionDenied(std::string m) { return {StatusCode::kPermissionDenied, std::move(m)}; }

// A value of type T or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    assert(!std::get<Status>(v_).ok() && "Result built from an OK Status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(v_); }

  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace sluice

#define SLUICE_CONCAT_INNER_(a, b) a##b
#define SLUICE_CONCAT_(a, b) SLUICE_CONCAT_INNER_(a, b)

// Returns from the current function if `expr` (a Status) is not OK.
#define SLUICE_RETURN_IF_ERROR(expr)                  \
  do {                                                \
    ::sluice::Status sluice_status_ = (expr);         \
    if (!sluice_status_.ok()) return sluice_status_;  \
  } while (0)

// `lhs = *expr` when `expr` (a Result) is OK, else returns its Status.
#define SLUICE_ASSIGN_OR_RETURN(lhs, expr) \
  SLUICE_ASSIGN_OR_RETURN_IMPL_(SLUICE_CONCAT_(sluice_result_, __LINE__), lhs, expr)
#define SLUICE_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return tmp.status();                 \
  lhs = std::move(tmp).value()
