#pragma once
// weave's exception types.

#include <stdexcept>

namespace weave {

/// Thrown inside a fiber at a suspension point after its task was cancelled.
///
/// Deliberately not derived from std::exception (asyncio made CancelledError a BaseException
/// for the same reason): a `catch (const std::exception&)` written for ordinary errors must
/// not swallow a cancellation. Catch it only to clean up, then rethrow.
class Cancelled {
 public:
  Cancelled() noexcept = default;
  /// A cancellation caused by the cancel scope `scope` (its deadline or its cancel()).
  explicit Cancelled(const void* scope) noexcept : scope_(scope) {}
  const char* what() const noexcept { return "weave::Cancelled: the task was cancelled"; }
  /// The cancel scope that caused it, or nullptr for Task::cancel().
  const void* scope() const noexcept { return scope_; }

 private:
  const void* scope_ = nullptr;
};

/// Thrown when a deadline expires (a timeout scope or a timed wait).
class TimeoutError : public std::runtime_error {
 public:
  TimeoutError() : std::runtime_error("weave::TimeoutError: the deadline expired") {}
  using std::runtime_error::runtime_error;
};

}  // namespace weave
