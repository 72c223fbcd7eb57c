#pragma once
// Cancel scopes: timeouts that compose (Trio's fail_after / move_on_after, asyncio.timeout).

#include <functional>
#include <optional>
#include <type_traits>
#include <utility>

#include "weave/clock.hpp"
#include "weave/detail/task_base.hpp"
#include "weave/errors.hpp"

namespace weave {

/// A region of a fiber's code that can be cancelled as a whole: by a deadline, or by cancel().
///
/// Most code uses the functions below (fail_after, move_on_after, shield), which open a scope
/// around a callable and handle its edge. A scope can also be used directly, as an RAII object
/// on the fiber's stack; its own cancellation then reaches its edge as a weave::Cancelled for
/// which owns() is true, and it is up to the code around it to catch that.
///
/// Semantics (Trio's): once a scope is cancelled, every checkpoint inside it throws Cancelled
/// until the fiber leaves the scope. When several scopes are cancelled, the outermost one's
/// cancellation is thrown, so the right scope reports it. Task::cancel() comes from outside
/// every scope and outranks them: it is never mistaken for a timeout. A shielding scope hides
/// every cancellation from outside it (including Task::cancel()) until the fiber leaves it.
///
/// @par Thread safety
/// Loop-affine; a scope belongs to the fiber that opened it, and must be left in the reverse
/// order of opening (as RAII does).
class CancelScope : private detail::ScopeNode {
 public:
  /// Opens a scope in the calling fiber. Throws std::logic_error outside a fiber.
  explicit CancelScope(TimePoint deadline = TimePoint::max(), bool shield = false);
  CancelScope(const CancelScope&) = delete;
  CancelScope& operator=(const CancelScope&) = delete;
  ~CancelScope();

  /// Cancels the scope now. Idempotent.
  void cancel() noexcept;
  /// Moves the deadline (earlier or later). A scope already cancelled stays cancelled.
  void reschedule(TimePoint deadline);
  TimePoint deadline() const noexcept { return deadline_; }
  /// True once the deadline passed or cancel() was called.
  bool cancel_called() const noexcept { return ScopeNode::cancel_called; }
  bool shielded() const noexcept { return shield; }
  /// True if `c` is this scope's own cancellation.
  bool owns(const Cancelled& c) const noexcept {
    return c.scope() == static_cast<const detail::ScopeNode*>(this);
  }

 private:
  static void on_deadline(detail::TimerNode* n);
  TimePoint deadline_;
};

namespace detail {
// Calls fn(scope) if fn takes the scope, else fn().
template <class F>
decltype(auto) call_in_scope(F& fn, CancelScope& scope) {
  if constexpr (std::is_invocable_v<F&, CancelScope&>)
    return std::invoke(fn, scope);
  else
    return std::invoke(fn);
}
template <class F>
using scope_result_t =
    typename std::conditional_t<std::is_invocable_v<F&, CancelScope&>,
                                std::invoke_result<F&, CancelScope&>, std::invoke_result<F&>>::type;
}  // namespace detail

/// Runs `fn` (or `fn(scope)`) and cancels it at loop time `deadline`; the cancellation turns
/// into weave::TimeoutError at the scope's edge.
///
/// @par Example
/// @code
/// std::string line = weave::fail_after(5s, [&] { return stream.read_line(); });
/// @endcode
/// @par Errors
/// weave::TimeoutError if the deadline cut the work short; anything `fn` throws.
template <class F>
detail::scope_result_t<F> fail_at(TimePoint deadline, F&& fn) {
  CancelScope scope(deadline);
  try {
    return detail::call_in_scope(fn, scope);
  } catch (const Cancelled& c) {
    if (!scope.owns(c)) throw;
    throw TimeoutError();
  }
}

/// fail_at(now + d, fn).
template <class F>
detail::scope_result_t<F> fail_after(Duration d, F&& fn);

/// What move_on_at returns: for a void function, whether the deadline cut it short; otherwise
/// the function's value, or nothing if the deadline cut it short.
template <class R>
using move_on_result_t = std::conditional_t<std::is_void_v<R>, bool, std::optional<R>>;

/// Runs `fn` (or `fn(scope)`) and gives up quietly at loop time `deadline`.
///
/// @par Example
/// @code
/// bool timed_out = weave::move_on_after(100ms, [&] { poll_sensors(); });
/// std::optional<int> v = weave::move_on_after(1s, [&] { return fetch(); });
/// @endcode
template <class F>
move_on_result_t<detail::scope_result_t<F>> move_on_at(TimePoint deadline, F&& fn) {
  using R = detail::scope_result_t<F>;
  CancelScope scope(deadline);
  try {
    if constexpr (std::is_void_v<R>) {
      detail::call_in_scope(fn, scope);
      return false;
    } else {
      return std::optional<R>(detail::call_in_scope(fn, scope));
    }
  } catch (const Cancelled& c) {
    if (!scope.owns(c)) throw;
    if constexpr (std::is_void_v<R>)
      return true;
    else
      return std::nullopt;
  }
}

/// move_on_at(now + d, fn).
template <class F>
move_on_result_t<detail::scope_result_t<F>> move_on_after(Duration d, F&& fn);

/// Runs `fn` (or `fn(scope)`) so that no cancellation from outside can interrupt it: a
/// Task::cancel() or an outer scope's deadline that happens meanwhile is delivered at the first
/// checkpoint after `fn` returns. Use it for cleanup that must finish (closing a session,
/// flushing a log).
template <class F>
detail::scope_result_t<F> shield(F&& fn) {
  CancelScope scope(TimePoint::max(), /*shield=*/true);
  return detail::call_in_scope(fn, scope);
}

namespace detail {
/// The running fiber's loop time plus `d`, saturating at TimePoint::max() (an endless timeout
/// must not wrap round into the past). std::logic_error outside a fiber.
TimePoint deadline_in(Duration d);
}  // namespace detail

template <class F>
detail::scope_result_t<F> fail_after(Duration d, F&& fn) {
  return fail_at(detail::deadline_in(d), std::forward<F>(fn));
}

template <class F>
move_on_result_t<detail::scope_result_t<F>> move_on_after(Duration d, F&& fn) {
  return move_on_at(detail::deadline_in(d), std::forward<F>(fn));
}

}  // namespace weave
