// weave_bench, second part: the tools tier (queues, locks, gather, the thread pool) next to
// Boost.Fiber and std::thread. Same conventions as weave_bench.cpp: one name per benchmark, a
// contract across commits; KeepRunningBatch(n) where one loop pass does n operations, so the
// Time column is the time of one operation.

#include <benchmark/benchmark.h>

#include <boost/fiber/buffered_channel.hpp>
#include <boost/fiber/fiber.hpp>
#include <boost/fiber/mutex.hpp>
#include <boost/fiber/operations.hpp>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "weave/weave.hpp"

namespace {

// ---- Queue ping-pong: one round trip = an item there and back through two queues ----------

// Two weave fibers and two Queue<int>(1)s, like asyncio's Queue(1) in bench/peers.
void BM_QueuePingPong_weave(benchmark::State& state) {
  weave::run([&state] {
    weave::Queue<int> ping(1), pong(1);
    auto echo = weave::spawn([&] {
      for (;;) {
        int v = ping.get();
        if (v < 0) return;
        pong.put(v);
      }
    });
    int i = 0;
    for (auto _ : state) {
      ping.put(i++);
      benchmark::DoNotOptimize(pong.get());
    }
    ping.put(-1);
    echo.join();
  });
}

// Two Boost.Fiber fibers and two buffered channels (capacity 2, the smallest Boost allows).
void BM_QueuePingPong_boost_fiber_channel(benchmark::State& state) {
  boost::fibers::buffered_channel<int> ping(2), pong(2);
  boost::fibers::fiber echo([&] {
    int v = 0;
    while (ping.pop(v) == boost::fibers::channel_op_status::success) pong.push(v);
  });
  int i = 0;
  for (auto _ : state) {
    ping.push(i++);
    int v = 0;
    pong.pop(v);
    benchmark::DoNotOptimize(v);
  }
  ping.close();
  echo.join();
}

// Two threads and two mutex+condvar queues (threads are not pinned: the OS places them).
struct BlockingQueue {
  std::mutex m;
  std::condition_variable cv;
  std::deque<int> items;
  void put(int v) {
    {
      std::lock_guard<std::mutex> l(m);
      items.push_back(v);
    }
    cv.notify_one();
  }
  int get() {
    std::unique_lock<std::mutex> l(m);
    cv.wait(l, [&] { return !items.empty(); });
    int v = items.front();
    items.pop_front();
    return v;
  }
};

void BM_QueuePingPong_std_thread_condvar(benchmark::State& state) {
  BlockingQueue ping, pong;
  std::thread echo([&] {
    for (;;) {
      int v = ping.get();
      if (v < 0) return;
      pong.put(v);
    }
  });
  int i = 0;
  for (auto _ : state) {
    ping.put(i++);
    benchmark::DoNotOptimize(pong.get());
  }
  ping.put(-1);
  echo.join();
}

// ---- A contended lock: 4 workers each take the lock, yield while holding it, release ------
//
// With cooperative fibers a lock is contended only if its holder suspends; the yield inside the
// critical section makes the other three queue up, so every release is a hand-off. Time is per
// acquisition (a batch is one acquisition by each of the 4 workers).

constexpr int kLockWorkers = 4;

void BM_LockContended_weave(benchmark::State& state) {
  weave::run([&state] {
    weave::Lock lock;
    bool done = false;
    std::vector<weave::Task<void>> workers;
    for (int w = 1; w < kLockWorkers; ++w)
      workers.push_back(weave::spawn([&] {
        while (!done) {
          std::lock_guard<weave::Lock> g(lock);
          weave::this_fiber::yield();
        }
      }));
    while (state.KeepRunningBatch(kLockWorkers)) {
      std::lock_guard<weave::Lock> g(lock);
      weave::this_fiber::yield();
    }
    done = true;
    for (auto& w : workers) w.join();
  });
}

void BM_LockContended_boost_fiber_mutex(benchmark::State& state) {
  boost::fibers::mutex lock;
  bool done = false;
  std::vector<boost::fibers::fiber> workers;
  for (int w = 1; w < kLockWorkers; ++w)
    workers.emplace_back([&] {
      while (!done) {
        std::lock_guard<boost::fibers::mutex> g(lock);
        boost::this_fiber::yield();
      }
    });
  while (state.KeepRunningBatch(kLockWorkers)) {
    std::lock_guard<boost::fibers::mutex> g(lock);
    boost::this_fiber::yield();
  }
  done = true;
  for (auto& w : workers) w.join();
}

// Threads cannot yield inside a lock the same way; the peer is 2 threads hammering one
// std::mutex around a tiny critical section (real contention across the 2 CPUs).
void BM_LockContended_std_mutex_threads(benchmark::State& state) {
  std::mutex lock;
  std::atomic<bool> done{false};
  long counter = 0;
  std::thread other([&] {
    while (!done.load(std::memory_order_relaxed)) {
      std::lock_guard<std::mutex> g(lock);
      ++counter;
    }
  });
  for (auto _ : state) {
    std::lock_guard<std::mutex> g(lock);
    ++counter;
  }
  done = true;
  other.join();
  benchmark::DoNotOptimize(counter);
}

// ---- gather of 1,000 empty tasks, and a round trip to the thread pool ---------------------

// Time is per gather of 1,000 tasks (spawn them, gather them); divide by 1,000 for per task.
void BM_Gather1000_weave(benchmark::State& state) {
  weave::run([&state] {
    std::vector<weave::Task<int>> tasks;
    tasks.reserve(1000);
    for (auto _ : state) {
      tasks.clear();
      for (int i = 0; i < 1000; ++i) tasks.push_back(weave::spawn([i] { return i; }));
      benchmark::DoNotOptimize(weave::gather(tasks));
    }
  });
}

// to_thread of an empty function: submit to the default pool, a pool thread runs it, the
// result wakes the fiber through the loop's inbox (an eventfd wake-up when the loop sleeps).
void BM_ToThread_weave(benchmark::State& state) {
  weave::run([&state] {
    for (auto _ : state) benchmark::DoNotOptimize(weave::to_thread([] { return 1; }));
  });
}

// Registered at start-up, beside weave_bench.cpp's own list.
const bool registered = [] {
  benchmark::RegisterBenchmark("BM_QueuePingPong/weave", BM_QueuePingPong_weave);
  benchmark::RegisterBenchmark("BM_QueuePingPong/boost_fiber_channel",
                               BM_QueuePingPong_boost_fiber_channel);
  benchmark::RegisterBenchmark("BM_QueuePingPong/std_thread_condvar",
                               BM_QueuePingPong_std_thread_condvar);
  benchmark::RegisterBenchmark("BM_LockContended/weave", BM_LockContended_weave);
  benchmark::RegisterBenchmark("BM_LockContended/boost_fiber_mutex",
                               BM_LockContended_boost_fiber_mutex);
  benchmark::RegisterBenchmark("BM_LockContended/std_mutex_threads",
                               BM_LockContended_std_mutex_threads);
  benchmark::RegisterBenchmark("BM_Gather1000/weave", BM_Gather1000_weave);
  benchmark::RegisterBenchmark("BM_ToThread/weave", BM_ToThread_weave);
  return true;
}();

}  // namespace
