// weave_bench, the bridge: a callback API called through weave::bridge::call against the same
// API driven by hand-written callbacks; a completion from another thread; an Asio timer through
// weave::use_fiber against Asio's own callbacks, stackful spawn and C++20 coroutines. Same
// conventions as weave_bench.cpp: the names are a contract, Time is per operation.

#include <benchmark/benchmark.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <functional>
#include <thread>

#include "weave/asio.hpp"
#include "weave/bridge.hpp"
#include "weave/weave.hpp"

namespace {

namespace asio = boost::asio;

// The legacy API, with a std::function callback as such APIs usually take: `now` calls back
// inside the call, `soon` from a later turn of the loop (call_soon, one node allocation).
// noinline: a library's function is compiled elsewhere; inlined, the hand-written callback
// would vanish into the benchmark's loop.
struct LegacyApi {
  weave::Loop& loop;
  [[gnu::noinline]] void now(int x, std::function<void(int)> done) { done(x + 1); }
  [[gnu::noinline]] void soon(int x, std::function<void(int)> done) {
    loop.call_soon([x, d = std::move(done)] { d(x + 1); });
  }
};

// ---- BM_BridgeCall: bridge::call vs hand-written callbacks ------------------------------------

// A fiber calls the API through the bridge; the callback runs inside the call, so the fiber
// never suspends. Per call: the completion state, the handle in a std::function, the outcome.
void BM_BridgeCall_weave_sync(benchmark::State& state) {
  weave::run([&state] {
    LegacyApi api{weave::Loop::current()};
    int x = 0;
    for (auto _ : state) x = weave::bridge::call(&LegacyApi::now, api, x);
    benchmark::DoNotOptimize(x);
  });
}

// The same API called with a hand-written callback.
void BM_BridgeCall_raw_sync(benchmark::State& state) {
  weave::Loop loop;
  LegacyApi api{loop};
  int x = 0;
  for (auto _ : state) api.now(x, [&x](int v) { x = v; });
  benchmark::DoNotOptimize(x);
}

// A fiber calls the API through the bridge; the callback comes from call_soon in a later turn,
// so the fiber suspends and is woken: a park, a call_soon node, a switch back.
void BM_BridgeCall_weave_call_soon(benchmark::State& state) {
  weave::run([&state] {
    LegacyApi api{weave::Loop::current()};
    int x = 0;
    for (auto _ : state) x = weave::bridge::call(&LegacyApi::soon, api, x);
    benchmark::DoNotOptimize(x);
  });
}

// The same API driven by hand-written callbacks on the loop: each callback starts the next call.
void BM_BridgeCall_raw_call_soon(benchmark::State& state) {
  weave::Loop loop;
  LegacyApi api{loop};
  int x = 0;
  std::function<void()> next = [&] {
    if (!state.KeepRunning()) return;
    api.soon(x, [&](int v) {
      x = v;
      next();
    });
  };
  loop.call_soon([&] { next(); });
  loop.run();
  benchmark::DoNotOptimize(x);
}

// ---- BM_BridgeForeignThread: a completion from another thread, round trip ---------------------

// A fiber hands a completion to a helper thread (a spinning mailbox), which calls it at once;
// the wake-up goes through the loop's inbox, usually with an eventfd write because the loop has
// gone to sleep in epoll_wait. Per round trip: hand-over, completion, post, wake-up, resume.
void BM_BridgeForeignThread_weave(benchmark::State& state) {
  using Done = weave::bridge::Completion<void(int)>;
  std::atomic<Done*> mailbox{nullptr};
  std::atomic<bool> stop{false};
  std::thread helper([&] {
    while (!stop.load(std::memory_order_acquire)) {
      Done* d = mailbox.exchange(nullptr, std::memory_order_acq_rel);
      if (d) {
        (*d)(1);
        delete d;
      } else {
        std::this_thread::yield();  // not a pure spin: both threads may share a CPU
      }
    }
  });
  state.SetLabel("threads not pinned");
  weave::run([&] {
    int sum = 0;
    for (auto _ : state)
      sum += weave::bridge::call<void(int)>(
          [&](Done d) { mailbox.store(new Done(std::move(d)), std::memory_order_release); });
    benchmark::DoNotOptimize(sum);
  });
  stop.store(true, std::memory_order_release);
  helper.join();
}

// ---- BM_AsioTimer: one expired-timer wait, four ways ------------------------------------------
// Each wait is on a timer whose expiry is already past, so it completes on the io_context's
// next poll: the cost measured is the machinery (initiation, handler, resumption), not time.

void BM_AsioTimer_use_fiber(benchmark::State& state) {
  asio::io_context io;
  weave::run(io, [&] {
    asio::steady_timer t(io);
    for (auto _ : state) {
      t.expires_at(asio::steady_timer::time_point::min());
      t.async_wait(weave::use_fiber);
    }
  });
}

void BM_AsioTimer_asio_callback(benchmark::State& state) {
  asio::io_context io;
  asio::steady_timer t(io);
  std::function<void(boost::system::error_code)> next = [&](boost::system::error_code) {
    if (!state.KeepRunning()) return;
    t.expires_at(asio::steady_timer::time_point::min());
    t.async_wait(next);
  };
  asio::post(io, [&] { next({}); });
  io.run();
}

void BM_AsioTimer_asio_spawn(benchmark::State& state) {
  asio::io_context io;
  asio::spawn(
      io,
      [&](asio::yield_context yield) {
        asio::steady_timer t(io);
        for (auto _ : state) {
          t.expires_at(asio::steady_timer::time_point::min());
          t.async_wait(yield);
        }
      },
      asio::detached);
  io.run();
}

asio::awaitable<void> timer_loop(benchmark::State& state) {
  asio::steady_timer t(co_await asio::this_coro::executor);
  for (auto _ : state) {
    t.expires_at(asio::steady_timer::time_point::min());
    co_await t.async_wait(asio::use_awaitable);
  }
}

void BM_AsioTimer_asio_awaitable(benchmark::State& state) {
  asio::io_context io;
  asio::co_spawn(io, timer_loop(state), asio::detached);
  io.run();
}

// ---- BM_AsioPost: the same four ways on asio::post, which has no kernel work at all --------
// (Not part of the contract: it shows the machinery that BM_AsioTimer's timerfd and epoll
// system calls hide.) Each variant keeps a timer alive: a real program has I/O objects, and
// with the reactor running Asio's scheduler looks at epoll between handlers.

void BM_AsioPost_use_fiber(benchmark::State& state) {
  asio::io_context io;
  weave::run(io, [&] {
    for (auto _ : state) asio::post(io, weave::use_fiber);
  });
}

void BM_AsioPost_asio_callback(benchmark::State& state) {
  asio::io_context io;
  asio::steady_timer reactor_user(io);
  std::function<void()> next = [&] {
    if (state.KeepRunning()) asio::post(io, next);
  };
  asio::post(io, next);
  io.run();
}

void BM_AsioPost_asio_spawn(benchmark::State& state) {
  asio::io_context io;
  asio::steady_timer reactor_user(io);
  asio::spawn(
      io,
      [&](asio::yield_context yield) {
        for (auto _ : state) asio::post(io, yield);
      },
      asio::detached);
  io.run();
}

asio::awaitable<void> post_loop(benchmark::State& state, asio::io_context& io) {
  for (auto _ : state) co_await asio::post(io, asio::use_awaitable);
}

void BM_AsioPost_asio_awaitable(benchmark::State& state) {
  asio::io_context io;
  asio::steady_timer reactor_user(io);
  asio::co_spawn(io, post_loop(state, io), asio::detached);
  io.run();
}

const bool registered = [] {
  benchmark::RegisterBenchmark("BM_BridgeCall/weave/sync", BM_BridgeCall_weave_sync);
  benchmark::RegisterBenchmark("BM_BridgeCall/raw_callback/sync", BM_BridgeCall_raw_sync);
  benchmark::RegisterBenchmark("BM_BridgeCall/weave/call_soon", BM_BridgeCall_weave_call_soon);
  benchmark::RegisterBenchmark("BM_BridgeCall/raw_callback/call_soon", BM_BridgeCall_raw_call_soon);
  benchmark::RegisterBenchmark("BM_BridgeForeignThread/weave", BM_BridgeForeignThread_weave);
  benchmark::RegisterBenchmark("BM_AsioTimer/use_fiber", BM_AsioTimer_use_fiber);
  benchmark::RegisterBenchmark("BM_AsioTimer/asio_callback", BM_AsioTimer_asio_callback);
  benchmark::RegisterBenchmark("BM_AsioTimer/asio_spawn", BM_AsioTimer_asio_spawn);
  benchmark::RegisterBenchmark("BM_AsioTimer/asio_awaitable", BM_AsioTimer_asio_awaitable);
  benchmark::RegisterBenchmark("BM_AsioPost/use_fiber", BM_AsioPost_use_fiber);
  benchmark::RegisterBenchmark("BM_AsioPost/asio_callback", BM_AsioPost_asio_callback);
  benchmark::RegisterBenchmark("BM_AsioPost/asio_spawn", BM_AsioPost_asio_spawn);
  benchmark::RegisterBenchmark("BM_AsioPost/asio_awaitable", BM_AsioPost_asio_awaitable);
  return true;
}();

}  // namespace
