#pragma once
// weave::bridge::await for Boost.Fiber futures: a weave fiber waits for a boost::fibers::future
// without blocking its loop.

#include <boost/fiber/future.hpp>
#include <utility>

#include "weave/executor.hpp"
#include "weave/loop.hpp"

namespace weave::bridge {

/// Suspends the calling weave fiber until the Boost.Fiber future `f` is ready and returns its
/// value (or rethrows its exception); the loop runs other fibers meanwhile.
///
/// Boost.Fiber and weave each have their own scheduler, and a Boost.Fiber future can only be
/// waited on by blocking a Boost.Fiber context. So the weave thread never touches Boost.Fiber's
/// scheduler: one thread of weave's default executor waits on the future (as a plain thread,
/// which Boost.Fiber allows) and completes the weave side. The promise may be fulfilled by a
/// Boost.Fiber fiber on any thread, or by a plain thread.
///
/// @par Example
/// @code
/// boost::fibers::future<int> f = boost_side.compute();   // fibers running on other threads
/// int v = weave::bridge::await(std::move(f));            // in a weave fiber
/// @endcode
/// @par Cancellation
/// A checkpoint. A cancelled waiter throws Cancelled at once; the executor thread keeps
/// waiting for the future, and its value is dropped.
/// @par Errors
/// What the future holds; boost::fibers::future_uninitialized (a future_error) for an invalid
/// future; std::logic_error outside a fiber.
template <class T>
T await(boost::fibers::future<T> f) {
  if (!f.valid()) throw boost::fibers::future_uninitialized();
  return run_in_executor(default_executor(), [f = std::move(f)]() mutable { return f.get(); });
}

/// The same for a boost::fibers::shared_future; the value is copied.
template <class T>
T await(boost::fibers::shared_future<T> f) {
  if (!f.valid()) throw boost::fibers::future_uninitialized();
  return run_in_executor(default_executor(), [f = std::move(f)]() mutable -> T { return f.get(); });
}

}  // namespace weave::bridge
