// weave_bench: micro-benchmarks of weave next to its peers (raw Boost.Context, Boost.Fiber,
// std::thread), all in one binary so that one run on a noisy machine measures all of them and
// the ratios between them mean something. See bench/README.md.
//
// The benchmark names are a contract across commits (bench/run_bench.sh and whoever compares
// two runs rely on them): change a benchmark's body if you must, never its name.
//
// Counting: where one loop iteration naturally does several operations (a round trip is two
// switches, two fibers yielding once each make two yields, a batch posts many callbacks), the
// loop uses State::KeepRunningBatch(n) with n the number of operations, so Google Benchmark
// counts one "iteration" per operation and the Time column is the time of ONE operation.
//
// No benchmark uses UseRealTime()/MinTime()/Iterations(): those append "/real_time" and the
// like to the printed name. The iteration count is therefore chosen from the benchmark thread's
// CPU time; the figures to read (and the ones run_bench.sh uses) are the real-time ones, the
// "Time" column.
//
// Set WEAVE_BENCH_EXTRA=1 to also run a few variants that are not part of the contract
// (eager spawn, Boost.Fiber launch::dispatch).

#include <benchmark/benchmark.h>
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <boost/context/fiber.hpp>
#include <boost/fiber/fiber.hpp>
#include <boost/fiber/operations.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "weave/weave.hpp"

namespace {

namespace ctx = boost::context;

// Thread placement for the benchmarks with two threads. On these VMs a cross-CPU wake-up and a
// same-CPU one cost very different amounts, and left alone the scheduler puts a waking thread
// next to its waker or not, from one run to the next. So the two threads are pinned: the
// benchmark's thread to the first CPU it may use, the helper thread to the second. With a single
// CPU allowed
// (`taskset -c 0 weave_bench`) nothing is pinned and both share that CPU. The placement is
// printed as the benchmark's label. The benchmark thread's mask is restored afterwards.
class CpuPlan {
 public:
  CpuPlan() {
    CPU_ZERO(&saved_);
    if (pthread_getaffinity_np(pthread_self(), sizeof saved_, &saved_) != 0) return;
    int found = 0;
    for (int c = 0; c < CPU_SETSIZE && found < 2; ++c) {
      if (!CPU_ISSET(c, &saved_)) continue;
      (found == 0 ? main_cpu_ : helper_cpu_) = c;
      ++found;
    }
    cpus_ = found;
    if (found == 2) pinned_ = pin(main_cpu_);
  }
  CpuPlan(const CpuPlan&) = delete;
  CpuPlan& operator=(const CpuPlan&) = delete;
  ~CpuPlan() {
    if (pinned_) pthread_setaffinity_np(pthread_self(), sizeof saved_, &saved_);
  }
  /// Called by the helper thread itself.
  void pin_helper() const {
    if (pinned_) pin(helper_cpu_);
  }
  std::string label() const {
    if (pinned_)
      return "2 CPUs: threads pinned to cpu " + std::to_string(main_cpu_) + " and cpu " +
             std::to_string(helper_cpu_);
    if (cpus_ == 1) return "1 CPU: both threads share cpu " + std::to_string(main_cpu_);
    return "threads not pinned";
  }

 private:
  static bool pin(int cpu) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    return pthread_setaffinity_np(pthread_self(), sizeof one, &one) == 0;
  }
  cpu_set_t saved_;
  int main_cpu_ = 0;
  int helper_cpu_ = -1;
  int cpus_ = 0;
  bool pinned_ = false;
};

// ---- Context switches ------------------------------------------------------------------------

// The physical floor: the benchmark's own stack and one boost::context::fiber resume each other.
// Each round trip is two one-way switches and is counted as two iterations
// (KeepRunningBatch(2)), so Time is the time of one one-way switch.
void BM_Switch_raw_boost_context(benchmark::State& state) {
  bool done = false;
  ctx::fiber peer{[&done](ctx::fiber&& back) {
    while (!done) back = std::move(back).resume();
    return std::move(back);
  }};
  while (state.KeepRunningBatch(2)) peer = std::move(peer).resume();
  done = true;
  peer = std::move(peer).resume();  // lets the peer return; `peer` is then empty
}

// Two weave fibers yielding to each other through the loop. Each batch is one yield by each
// fiber (two yields), so Time is the time of one yield, loop turns included: the loop runs
// every ready fiber of a turn and then starts a new turn (inbox and timer checks, and the I/O
// poll the loop does every few busy turns when it watches descriptors).
void BM_Yield_weave(benchmark::State& state) {
  weave::run([&state] {
    bool done = false;
    auto peer = weave::spawn([&done] {
      while (!done) weave::this_fiber::yield();
    });
    while (state.KeepRunningBatch(2)) weave::this_fiber::yield();
    done = true;
    peer.join();
  });
}

// The same with two Boost.Fiber fibers (round-robin scheduler) while the thread's main context
// waits in join(). Time is one yield.
void BM_Yield_boost_fiber(benchmark::State& state) {
  bool done = false;
  boost::fibers::fiber peer([&done] {
    while (!done) boost::this_fiber::yield();
  });
  boost::fibers::fiber driver([&] {
    while (state.KeepRunningBatch(2)) boost::this_fiber::yield();
    done = true;
  });
  driver.join();
  peer.join();
}

// Two threads handing a turn back and forth with a mutex and two condition variables. Time is
// one round trip (two wake-ups). The threads are pinned to two CPUs (see CpuPlan); run under
// `taskset -c 0` for the one-CPU figure (run_bench.sh does both).
void BM_PingPong_std_thread_condvar(benchmark::State& state) {
  CpuPlan cpus;
  state.SetLabel(cpus.label());
  std::mutex m;
  std::condition_variable to_peer, to_main;
  bool peer_turn = false;
  bool stop = false;
  std::thread peer([&] {
    cpus.pin_helper();
    std::unique_lock lock(m);
    for (;;) {
      to_peer.wait(lock, [&] { return peer_turn || stop; });
      if (stop) return;
      peer_turn = false;
      to_main.notify_one();
    }
  });
  for (auto _ : state) {
    std::unique_lock lock(m);
    peer_turn = true;
    to_peer.notify_one();
    to_main.wait(lock, [&] { return !peer_turn; });
  }
  {
    std::lock_guard lock(m);
    stop = true;
  }
  to_peer.notify_one();
  peer.join();
}

// ---- Spawn and join --------------------------------------------------------------------------

// Spawn an empty fiber and join it, from a fiber of a loop that is already running. The first
// iterations warm the loop's stack pool; the steady state reuses a pooled stack. The spawn is
// the default (FIFO) one: the child is queued, the parent parks in join(), the loop's next turn
// runs the child, which wakes the parent for the turn after.
void BM_SpawnJoin_weave(benchmark::State& state) {
  weave::run([&state] {
    for (auto _ : state) {
      auto child = weave::spawn([] {});
      child.join();
    }
  });
}

// Extra (WEAVE_BENCH_EXTRA=1): the same with SpawnOptions::eager, where the child runs at once
// and switches straight back to its parent.
void BM_SpawnJoin_weave_eager(benchmark::State& state) {
  weave::run([&state] {
    weave::SpawnOptions eager;
    eager.eager = true;
    for (auto _ : state) {
      auto child = weave::spawn(eager, [] {});
      child.join();
    }
  });
}

// Boost.Fiber with its default launch policy (launch::post), from the thread's main context
// (itself a Boost.Fiber context). Default stack allocator.
void BM_SpawnJoin_boost_fiber(benchmark::State& state) {
  for (auto _ : state) {
    boost::fibers::fiber child([] {});
    child.join();
  }
}

// Extra (WEAVE_BENCH_EXTRA=1): launch::dispatch, Boost.Fiber's eager start.
void BM_SpawnJoin_boost_fiber_dispatch(benchmark::State& state) {
  for (auto _ : state) {
    boost::fibers::fiber child(boost::fibers::launch::dispatch, [] {});
    child.join();
  }
}

void BM_SpawnJoin_std_thread(benchmark::State& state) {
  for (auto _ : state) {
    std::thread child([] {});
    child.join();
  }
}

// ---- Callbacks, timers, futures --------------------------------------------------------------

// call_soon of a callback (it only bumps a counter) and the loop running it. A fiber schedules
// a batch of kCallSoonBatch callbacks and yields; the loop runs them in its next turn and then
// resumes the fiber. Time is per callback: allocation of the node, its Handle (dropped at once),
// queueing, dispatch and release, plus 1/kCallSoonBatch of a yield and a loop turn.
constexpr int kCallSoonBatch = 100;

void BM_CallSoon_weave(benchmark::State& state) {
  std::int64_t ran = 0;
  weave::run([&state, &ran] {
    weave::Loop& loop = weave::Loop::current();
    while (state.KeepRunningBatch(kCallSoonBatch)) {
      for (int i = 0; i < kCallSoonBatch; ++i) loop.call_soon([&ran] { ++ran; });
      weave::this_fiber::yield();
    }
    if (ran != state.iterations()) state.SkipWithError("call_soon: callbacks were lost");
  });
}

// call_soon_threadsafe throughput. Method: a producer thread posts callbacks as fast as it can,
// with at most kPostWindow posted and not yet run (so memory stays bounded; when the window is
// full it yields its CPU); the benchmark thread runs the loop. A fiber on the loop counts the
// callbacks in batches of kPostBatch: it waits on a weave::Future that the callback completing
// the batch sets, so while no callback is there the loop sleeps in epoll_wait like an idle loop
// does, and is woken through the inbox's eventfd. Time is per callback posted by the producer
// and run by the loop, i.e. the throughput of the slower side. Producer and loop are pinned to
// two CPUs (see CpuPlan; the label says where they ran), so the figure includes the cache-line
// traffic on the shared inbox, the eventfd wake-ups, and the cross-thread free of each callback
// node (allocated by the producer, freed by the loop).
constexpr std::int64_t kPostBatch = 1000;
constexpr std::uint64_t kPostWindow = 4096;

void BM_CallSoonThreadsafe_weave(benchmark::State& state) {
  // Outside the fiber: callbacks still queued when the fiber ends may run in the rest of that
  // loop turn, before weave::run closes the loop, and must find this alive.
  struct Shared {
    std::atomic<std::uint64_t> ran{0};  // written by the loop thread only
    std::atomic<bool> stop{false};
    std::uint64_t target = 0;                    // loop thread only
    std::optional<weave::Promise<void>> filled;  // loop thread only: set when ran == target
  } s;
  CpuPlan cpus;
  state.SetLabel(cpus.label());
  weave::run([&state, &s, &cpus] {
    weave::Loop& loop = weave::Loop::current();
    auto callback = [&s] {
      std::uint64_t n = s.ran.load(std::memory_order_relaxed) + 1;
      s.ran.store(n, std::memory_order_release);
      if (n == s.target && s.filled) s.filled->set_value();
    };
    std::thread producer([&s, &loop, &cpus, callback] {
      cpus.pin_helper();
      std::uint64_t posted = 0;
      while (!s.stop.load(std::memory_order_relaxed)) {
        if (posted - s.ran.load(std::memory_order_acquire) >= kPostWindow) {
          // Not a busy spin: both threads may share one CPU.
          std::this_thread::yield();
          continue;
        }
        loop.call_soon_threadsafe(callback);
        ++posted;
      }
    });
    while (state.KeepRunningBatch(kPostBatch)) {
      s.target += kPostBatch;
      // Callbacks only run while this fiber is suspended, so `ran` passes `target` one by one
      // unless it already had (the callbacks queued behind the one that woke us).
      if (s.ran.load(std::memory_order_relaxed) >= s.target) continue;
      s.filled.emplace();
      s.filled->get_future().get();
      s.filled.reset();
    }
    s.stop.store(true, std::memory_order_relaxed);
    producer.join();
  });
}

// call_later (1 s ahead, so it never fires) and Handle::cancel, which takes the timer out of the
// loop's heap at once. The heap is otherwise empty. Includes one clock read (Loop::time()).
void BM_TimerScheduleCancel_weave(benchmark::State& state) {
  weave::run([&state] {
    weave::Loop& loop = weave::Loop::current();
    for (auto _ : state) {
      weave::Handle h = loop.call_later(std::chrono::seconds(1), [] {});
      h.cancel();
    }
  });
}

// A Promise made, its Future taken, set_value on the loop's thread, Future::get in a fiber
// (the value is already there, so get() does not suspend).
void BM_FutureSetGet_weave(benchmark::State& state) {
  weave::run([&state] {
    for (auto _ : state) {
      weave::Promise<int> promise;
      weave::Future<int> future = promise.get_future();
      promise.set_value(42);
      benchmark::DoNotOptimize(future.get());
    }
  });
}

void register_benchmarks() {
  benchmark::RegisterBenchmark("BM_Switch/raw_boost_context", BM_Switch_raw_boost_context);
  benchmark::RegisterBenchmark("BM_Yield/weave", BM_Yield_weave);
  benchmark::RegisterBenchmark("BM_Yield/boost_fiber", BM_Yield_boost_fiber);
  benchmark::RegisterBenchmark("BM_PingPong/std_thread_condvar", BM_PingPong_std_thread_condvar);
  benchmark::RegisterBenchmark("BM_SpawnJoin/weave", BM_SpawnJoin_weave);
  benchmark::RegisterBenchmark("BM_SpawnJoin/boost_fiber", BM_SpawnJoin_boost_fiber);
  benchmark::RegisterBenchmark("BM_SpawnJoin/std_thread", BM_SpawnJoin_std_thread);
  benchmark::RegisterBenchmark("BM_CallSoon/weave", BM_CallSoon_weave);
  benchmark::RegisterBenchmark("BM_CallSoonThreadsafe/weave", BM_CallSoonThreadsafe_weave);
  benchmark::RegisterBenchmark("BM_TimerScheduleCancel/weave", BM_TimerScheduleCancel_weave);
  benchmark::RegisterBenchmark("BM_FutureSetGet/weave", BM_FutureSetGet_weave);

  const char* extra = std::getenv("WEAVE_BENCH_EXTRA");
  if (extra && extra[0] == '1') {
    benchmark::RegisterBenchmark("BM_SpawnJoin/weave_eager", BM_SpawnJoin_weave_eager);
    benchmark::RegisterBenchmark("BM_SpawnJoin/boost_fiber_dispatch",
                                 BM_SpawnJoin_boost_fiber_dispatch);
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_benchmarks();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
