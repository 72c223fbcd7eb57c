#pragma once
// Blocking work on a thread pool, awaited from fibers (asyncio's run_in_executor / to_thread).

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <stop_token>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "weave/detail/inline_function.hpp"
#include "weave/future.hpp"

namespace weave {

/// A fixed pool of threads that runs blocking jobs in FIFO order.
///
/// Fibers hand it work through run_in_executor() / to_thread(), which suspend only the calling
/// fiber; the loop keeps running the others.
///
/// @par Thread safety
/// submit() may be called from any thread.
class ThreadPool {
 public:
  /// Starts `threads` worker threads (at least one).
  explicit ThreadPool(std::size_t threads = default_size());
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  /// Lets the running jobs finish, drops the jobs that have not started (their waiters get
  /// std::future_error(broken_promise)), and joins the threads. A job that never returns keeps
  /// the destructor waiting.
  ~ThreadPool();

  /// Queues a job. A job that will never run (the pool is shutting down) is destroyed unrun,
  /// which releases what it holds (a Promise it owns breaks, so its waiter is told).
  /// Throws std::runtime_error after shutdown().
  void submit(detail::InlineFunction job);
  /// Stops taking jobs and drops the queued ones (Python's shutdown(wait=False,
  /// cancel_futures=True)); running jobs go on, and the destructor waits for them.
  void shutdown();
  std::size_t size() const noexcept { return threads_.size(); }
  /// std::thread::hardware_concurrency(), at least 1.
  static std::size_t default_size() noexcept;

 private:
  void work(std::stop_token stop);

  std::mutex mutex_;
  std::condition_variable_any ready_;
  std::deque<detail::InlineFunction> jobs_;
  bool shut_down_ = false;
  std::vector<std::jthread> threads_;
};

/// The process-wide pool used by to_thread(): created on first use with
/// ThreadPool::default_size() threads, or the size given to set_default_executor_size() before.
ThreadPool& default_executor();
/// Sets the default pool's size; only has an effect before the pool's first use.
void set_default_executor_size(std::size_t threads);

namespace detail {

// Awaits a job's future; on cancellation of the waiting fiber, asks the job to stop and leaves
// it to finish on its thread (its late result is dropped with the promise).
template <class T>
T await_job(Future<T>& future, std::stop_source& stop, SourceLocation where) {
  try {
    if constexpr (std::is_void_v<T>) {
      future.get(where);
    } else {
      return std::move(future.get(where));
    }
  } catch (const Cancelled&) {
    stop.request_stop();
    throw;
  }
}

template <class T, class Get>
void settle(Promise<T>& p, Get&& get) {
  std::exception_ptr failed;
  try {
    if constexpr (std::is_void_v<T>) {
      get();
      p.try_set_value();
    } else {
      p.try_set_value(get());
    }
    return;
  } catch (...) {
    failed = std::current_exception();
  }
  // Outside the handler: once the waiter can see the exception, this thread holds no count of
  // it, so the waiter's side destroys it (see Promise::set_exception).
  p.try_set_exception(std::move(failed));
}

}  // namespace detail

/// Runs `fn(args...)` on `pool` and suspends the calling fiber until it returns; returns its
/// result or rethrows its exception. If `fn` takes a std::stop_token first, it gets one that is
/// stopped when the waiting fiber is cancelled.
///
/// @par Example
/// @code
/// std::string body = weave::run_in_executor(pool, [] { return blocking_http_get(url); });
/// @endcode
/// @par Cancellation
/// A checkpoint. Cancelling the waiting fiber throws Cancelled in it at once and requests stop
/// on the job's token; a thread cannot be interrupted, so the job runs on until it returns (or
/// notices the token), and its late result is dropped safely.
/// @par Errors
/// Whatever `fn` throws; std::future_error(broken_promise) if the pool was destroyed before
/// the job ran; std::logic_error outside a fiber.
template <class F, class... Args>
auto run_in_executor(ThreadPool& pool, F&& fn, Args&&... args) {
  using D = std::decay_t<F>;
  constexpr bool kTakesToken = std::is_invocable_v<D&, std::stop_token, std::decay_t<Args>&...>;
  using R =
      typename std::conditional_t<kTakesToken,
                                  std::invoke_result<D&, std::stop_token, std::decay_t<Args>&...>,
                                  std::invoke_result<D&, std::decay_t<Args>&...>>::type;
  detail::TaskBase* self = detail::LoopAccess::require_fiber("weave::run_in_executor");
  detail::LoopAccess::checkpoint(self);
  Promise<R> promise(*self->loop);
  Future<R> future = promise.get_future();
  std::stop_source stop;
  // The job owns the promise: if the pool drops the job unrun, the promise breaks and the
  // waiter hears of it instead of waiting forever.
  pool.submit([p = std::move(promise), token = stop.get_token(), f = std::forward<F>(fn),
               tup = std::make_tuple(std::forward<Args>(args)...)]() mutable {
    detail::settle(p, [&]() -> R {
      return std::apply(
          [&](auto&... a) -> R {
            if constexpr (kTakesToken)
              return std::invoke(f, token, a...);
            else
              return std::invoke(f, a...);
          },
          tup);
    });
  });
  return detail::await_job<R>(future, stop, SourceLocation::current());
}

/// run_in_executor(default_executor(), fn, args...) (asyncio.to_thread).
template <class F, class... Args>
auto to_thread(F&& fn, Args&&... args) {
  return run_in_executor(default_executor(), std::forward<F>(fn), std::forward<Args>(args)...);
}

/// A weave Future that completes when `f` does, without blocking the loop (asyncio's
/// wrap_future). A std::future has no completion callback, so one thread of the default
/// executor waits for it; until `f` completes, that thread is busy.
///
/// @par Example
/// @code
/// std::future<int> legacy = start_legacy_job();
/// int r = weave::wrap_future(std::move(legacy)).get();  // suspends this fiber only
/// @endcode
template <class T>
Future<T> wrap_future(std::future<T> f) {
  Promise<T> promise;  // on the current loop
  Future<T> result = promise.get_future();
  default_executor().submit([p = std::move(promise), f = std::move(f)]() mutable {
    detail::settle(p, [&]() -> decltype(auto) { return f.get(); });
  });
  return result;
}

/// The same for a std::shared_future (its value is copied).
template <class T>
Future<T> wrap_future(std::shared_future<T> f) {
  Promise<T> promise;
  Future<T> result = promise.get_future();
  default_executor().submit([p = std::move(promise), f = std::move(f)]() mutable {
    detail::settle(p, [&]() -> decltype(auto) { return f.get(); });
  });
  return result;
}

}  // namespace weave
