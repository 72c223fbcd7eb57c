#include "weave/executor.hpp"

#include <algorithm>
#include <atomic>
#include <stdexcept>

namespace weave {

namespace {
std::atomic<std::size_t> g_default_size{0};
}

std::size_t ThreadPool::default_size() noexcept {
  return std::max<std::size_t>(1, std::thread::hardware_concurrency());
}

ThreadPool::ThreadPool(std::size_t threads) {
  threads = std::max<std::size_t>(1, threads);
  threads_.reserve(threads);
  for (std::size_t i = 0; i < threads; ++i)
    threads_.emplace_back([this](std::stop_token stop) { work(stop); });
}

ThreadPool::~ThreadPool() {
  shutdown();
  for (auto& t : threads_) t.request_stop();
  ready_.notify_all();
  threads_.clear();  // joins
}

void ThreadPool::shutdown() {
  std::deque<detail::InlineFunction> dropped;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    shut_down_ = true;
    dropped.swap(jobs_);
  }
  // Destroyed outside the lock: a dropped job's destructor may do anything (break a promise).
  dropped.clear();
}

void ThreadPool::submit(detail::InlineFunction job) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!shut_down_) {
      jobs_.push_back(std::move(job));
      ready_.notify_one();
      return;
    }
  }
  throw std::runtime_error("weave: submit to a thread pool that was shut down");
}

void ThreadPool::work(std::stop_token stop) {
  for (;;) {
    detail::InlineFunction job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      // condition_variable_any's stop-aware wait: a stop request wakes the thread. Once stop is
      // requested no new job starts, even if some are queued: the destructor drops those.
      ready_.wait(lock, stop, [this] { return !jobs_.empty(); });
      if (stop.stop_requested() || jobs_.empty()) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job();  // exceptions are caught inside the job (it settles a promise)
  }
}

ThreadPool& default_executor() {
  // Constructed on first use, destroyed at exit after main returns.
  static ThreadPool pool(g_default_size.load() ? g_default_size.load()
                                               : ThreadPool::default_size());
  return pool;
}

void set_default_executor_size(std::size_t threads) { g_default_size.store(threads); }

}  // namespace weave
