#pragma once
// weave::bridge::await for std::future and std::shared_future: a fiber waits for a future of
// the standard library without blocking its loop.

#include <chrono>
#include <future>
#include <utility>

#include "weave/executor.hpp"
#include "weave/loop.hpp"

namespace weave::bridge {

/// Suspends the calling fiber until `f` is ready and returns its value (or rethrows its
/// exception); the loop runs other fibers meanwhile.
///
/// A std::future has no completion callback, so unless it is ready already (then it returns at
/// once, without a thread) one thread of weave's default executor blocks on it until it is
/// ready (this is weave::wrap_future). Size the executor (set_default_executor_size) for the
/// number of foreign futures waited on at once.
///
/// @par Example
/// @code
/// std::future<Row> row = legacy_db.query_async(sql);  // completes on the library's thread
/// Row r = weave::bridge::await(std::move(row));      // in a fiber
/// @endcode
/// @par Cancellation
/// A checkpoint. A cancelled waiter throws Cancelled at once; the executor thread keeps
/// waiting for the future (a std::future cannot be interrupted), and its value is dropped.
/// @par Errors
/// What the future holds; std::future_error(no_state) for an invalid future;
/// std::logic_error outside a fiber.
template <class T>
T await(std::future<T> f) {
  weave::detail::TaskBase* self = weave::detail::LoopAccess::require_fiber("weave::bridge::await");
  weave::detail::LoopAccess::checkpoint(self);
  if (!f.valid()) throw std::future_error(std::future_errc::no_state);
  if (f.wait_for(std::chrono::seconds(0)) == std::future_status::ready) return f.get();
  if constexpr (std::is_void_v<T>)
    wrap_future(std::move(f)).get();
  else
    return std::move(wrap_future(std::move(f)).get());
}

/// The same for a std::shared_future; the value is copied (other copies of the shared future
/// keep theirs).
template <class T>
T await(std::shared_future<T> f) {
  weave::detail::TaskBase* self = weave::detail::LoopAccess::require_fiber("weave::bridge::await");
  weave::detail::LoopAccess::checkpoint(self);
  if (!f.valid()) throw std::future_error(std::future_errc::no_state);
  if (f.wait_for(std::chrono::seconds(0)) == std::future_status::ready) return f.get();
  if constexpr (std::is_void_v<T>)
    wrap_future(std::move(f)).get();
  else
    return std::move(wrap_future(std::move(f)).get());
}

}  // namespace weave::bridge
