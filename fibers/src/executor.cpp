#include "weave/executor.hpp"

#include <algorithm>
#include <atomic>

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
  for (auto& t : threads_) t.request_stop();
  ready_.notify_all();
  threads_.clear();  // joins
  // Jobs that never started are destroyed here, on the destroying thread.
  jobs_.clear();
}

void ThreadPool::submit(detail::InlineFunction job) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    jobs_.push_back(std::move(job));
  }
  ready_.notify_one();
}

void ThreadPool::work(std::stop_token stop) {
  for (;;) {
    detail::InlineFunction job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      // condition_variable_any's stop-aware wait: a stop request wakes the thread.
      if (!ready_.wait(lock, stop, [this] { return !jobs_.empty(); })) return;
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
