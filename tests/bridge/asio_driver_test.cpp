// AsioDriver: an io_context and a weave loop on one thread. Fibers and Asio handlers take turns,
// posts from other threads and the loop's own I/O wake it through the io_context, an idle pair
// sleeps (no busy polling), and the loop's timers follow an Asio timer.

#include "weave/asio/driver.hpp"
// (the header under test comes first: that proves it is self-contained)

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "virtual_time.hpp"
#include "weave/asio/use_fiber.hpp"
#include "weave/bridge/call.hpp"
#include "weave/errors.hpp"
#include "weave/event.hpp"
#include "weave/future.hpp"
#include "weave/io.hpp"
#include "weave/task.hpp"
#include "weave/this_fiber.hpp"

namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;
using weave::AsioDriver;

std::chrono::microseconds thread_cpu_time() {
  rusage u{};
  getrusage(RUSAGE_THREAD, &u);
  auto tv = [](const timeval& t) {
    return std::chrono::seconds(t.tv_sec) + std::chrono::microseconds(t.tv_usec);
  };
  return tv(u.ru_utime) + tv(u.ru_stime);
}

TEST(AsioDriver, FibersAndAsioHandlersShareTheThreadAndTakeTurns) {
  asio::io_context io;
  weave::Loop loop;
  AsioDriver driver(io, loop);
  std::vector<std::string> order;
  const auto me = std::this_thread::get_id();
  // A legacy callback chain and a fiber, each three steps, each step yielding to the other side.
  std::function<void(int)> legacy = [&](int i) {
    EXPECT_EQ(std::this_thread::get_id(), me);
    order.push_back("handler " + std::to_string(i));
    if (i < 3) asio::post(io, [&, i] { legacy(i + 1); });
  };
  asio::post(io, [&] { legacy(1); });
  auto fiber = loop.spawn([&] {
    for (int i = 1; i <= 3; ++i) {
      EXPECT_EQ(std::this_thread::get_id(), me);
      order.push_back("fiber " + std::to_string(i));
      weave::this_fiber::yield();
    }
  });
  driver.run_until_complete(fiber);
  io.poll();  // what is left of the chain
  // One step each, in turn: a turn of the loop is one Asio handler among the others.
  EXPECT_EQ(order, (std::vector<std::string>{"fiber 1", "handler 1", "fiber 2", "handler 2",
                                             "fiber 3", "handler 3"}));
}

TEST(AsioDriver, ACompletionFromAnAsioHandlerResumesTheFiberBeforeLaterHandlers) {
  asio::io_context io;
  weave::Loop loop;
  AsioDriver driver(io, loop);
  std::vector<std::string> order;
  weave::bridge::Completion<void(int)> kept;
  auto waiter = loop.spawn([&] {
    int v = weave::bridge::call<void(int)>([&](auto d) { kept = std::move(d); });
    order.push_back("fiber resumed with " + std::to_string(v));
  });
  auto starter = loop.spawn([&] {
    asio::post(io, [&] {
      kept(7);  // wakes the fiber from outside the loop: the driver is asked for a turn
      asio::post(io, [&] { order.push_back("handler posted after the completion"); });
    });
  });
  driver.run_until_complete(waiter);
  io.poll();
  EXPECT_EQ(order, (std::vector<std::string>{"fiber resumed with 7",
                                             "handler posted after the completion"}));
}

TEST(AsioDriver, APostFromAnotherThreadWakesTheIdlePair) {
  asio::io_context io;
  weave::Loop loop;
  AsioDriver driver(io, loop);
  std::thread poster;
  auto task = loop.spawn([&] {
    weave::Promise<int> p;
    auto f = p.get_future();
    poster = std::thread([p = std::move(p)]() mutable {
      std::this_thread::sleep_for(2ms);
      p.set_value(5);
    });
    return f.get();
  });
  EXPECT_EQ(driver.run_until_complete(task), 5);
  poster.join();
}

TEST(AsioDriver, AnIdlePairSleepsInsteadOfPolling) {
  asio::io_context io;
  weave::Loop loop;  // real time
  AsioDriver driver(io, loop);
  auto task = loop.spawn([&] {
    weave::this_fiber::sleep_for(30ms);  // a weave timer: the driver's Asio timer wakes it
    asio::steady_timer t(io, 30ms);
    t.async_wait(weave::use_fiber);  // an Asio timer
  });
  const auto cpu0 = thread_cpu_time();
  const auto wall0 = std::chrono::steady_clock::now();
  driver.run_until_complete(task);
  const auto wall = std::chrono::steady_clock::now() - wall0;
  const auto cpu = thread_cpu_time() - cpu0;
  EXPECT_GE(wall, 60ms) << "a timer fired early";
  EXPECT_LT(cpu, 15ms) << "waiting must sleep in epoll_wait, not spin";
}

TEST(AsioDriver, VirtualTimeJumpsWhenNothingIsReady) {
  asio::io_context io;
  weave::ManualClock clock;
  weave::Loop loop(weave_test::manual_time(clock));
  AsioDriver driver(io, loop);
  auto task = loop.spawn([&] { weave::this_fiber::sleep_for(1h); });
  driver.run_until_complete(task);
  EXPECT_EQ(weave_test::now(loop), 1h);
}

TEST(AsioDriver, ManyIoEventsAtOnceAreAllSeen) {
  // More fds become readable at once than the loop takes in one poll (64): the driver must look
  // again, since the io_context's edge-triggered watch will not say so twice.
  constexpr int kPipes = 150;
  asio::io_context io;
  weave::Loop loop;
  AsioDriver driver(io, loop);
  std::vector<int> fds(2 * kPipes);
  for (int i = 0; i < kPipes; ++i) ASSERT_EQ(::pipe2(&fds[2 * i], O_NONBLOCK | O_CLOEXEC), 0);
  int woken = 0;
  auto waiters = loop.spawn([&] {
    std::vector<weave::Task<void>> tasks;
    for (int i = 0; i < kPipes; ++i)
      tasks.push_back(weave::spawn([&, i] {
        weave::IoWatch w(fds[2 * i]);
        w.wait_readable();
        ++woken;
      }));
    weave::this_fiber::yield();  // every waiter is registered and parked
    weave::this_fiber::yield();
    std::thread([&] {
      for (int i = 0; i < kPipes; ++i) (void)!::write(fds[2 * i + 1], "x", 1);
    }).join();
    for (auto& t : tasks) t.join();
  });
  driver.run_until_complete(waiters);
  EXPECT_EQ(woken, kPipes);
  for (int fd : fds) ::close(fd);
}

TEST(AsioDriver, LoopStopEndsTheRun) {
  asio::io_context io;
  weave::Loop loop;
  AsioDriver driver(io, loop);
  auto forever = loop.spawn([] { weave::this_fiber::sleep_for(1h); });
  loop.spawn([&] { loop.stop(); });
  EXPECT_THROW(driver.run_until_complete(forever), std::runtime_error);
  EXPECT_FALSE(forever.done());
  forever.cancel();
  try {
    driver.run_until_complete(forever);
  } catch (const weave::Cancelled&) {
  }
  EXPECT_TRUE(forever.cancelled());
}

TEST(AsioDriver, IoStopEndsTheRun) {
  asio::io_context io;
  weave::Loop loop;
  AsioDriver driver(io, loop);
  auto forever = loop.spawn([] { weave::this_fiber::sleep_for(1h); });
  asio::post(io, [&] { io.stop(); });
  EXPECT_THROW(driver.run_until_complete(forever), std::runtime_error);
  io.restart();
  driver.close_loop();
  EXPECT_TRUE(forever.cancelled());
  EXPECT_TRUE(loop.is_closed());
}

TEST(AsioDriver, RunReturnsWhenTheLoopHasNothingLeft) {
  asio::io_context io;
  weave::Loop loop;
  AsioDriver driver(io, loop);
  int n = 0;
  for (int i = 0; i < 3; ++i)
    loop.spawn([&] {
      asio::steady_timer t(io, 1ms);
      t.async_wait(weave::use_fiber);
      ++n;
    });
  driver.run();
  EXPECT_EQ(n, 3);
  EXPECT_FALSE(loop.alive());
}

TEST(AsioDriver, WeaveRunWithAnIoContextEndsLeftoverTasksThroughAsio) {
  asio::io_context io;
  bool leftover_cancelled = false;
  int r = weave::run(io, [&] {
    weave::spawn([&] {
      asio::steady_timer t(io, 1h);
      try {
        t.async_wait(weave::use_fiber);  // cancelled on the way out: Asio completes it
      } catch (const weave::Cancelled&) {
        leftover_cancelled = true;
        throw;
      }
    });
    weave::this_fiber::yield();
    return 42;
  });
  EXPECT_EQ(r, 42);
  EXPECT_TRUE(leftover_cancelled);
}

TEST(AsioDriver, NotifyAfterWakingAFiberByOtherMeansRunsATurn) {
  asio::io_context io;
  weave::Loop loop;
  AsioDriver driver(io, loop);
  weave::Event ev;
  auto waiter = loop.spawn([&] { ev.wait(); });
  loop.spawn([&] {
    asio::post(io, [&] {
      ev.set();  // from an Asio handler, outside the loop's turn
      weave::bridge::Embedder::notify(loop);
    });
  });
  driver.run_until_complete(waiter);
  EXPECT_TRUE(waiter.done());
}

// What an Asio handler does to the loop while the loop is between turns reaches it without a
// notify: a fiber woken, a fiber spawned, a callback scheduled, a timer armed. A watchdog stops
// the io_context after 10 s, which fails the wait instead of hanging the test.
TEST(AsioDriver, WorkMadeReadyByAnAsioHandlerRunsWithoutANotify) {
  asio::io_context io;
  weave::Loop loop;
  AsioDriver driver(io, loop);
  asio::steady_timer watchdog(io, 10s);
  watchdog.async_wait([&](boost::system::error_code ec) {
    if (!ec) io.stop();
  });
  // Each case: the fiber that waits for the outcome is started and left waiting, then an Asio
  // timer's handler acts while the loop is idle, so that nothing but the handler's own work can
  // give the loop a turn.
  asio::steady_timer soon(io);
  auto after_1ms = [&](std::function<void()> fn) {
    soon.expires_after(1ms);
    soon.async_wait([fn = std::move(fn)](boost::system::error_code ec) {
      if (!ec) fn();
    });
  };
  std::vector<std::string> seen;

  weave::Event ev;
  auto woken = loop.spawn([&] {
    ev.wait();
    seen.push_back("woken");
  });
  after_1ms([&] { ev.set(); });
  driver.run_until_complete(woken);

  // The other cases: the handler hands the loop some work its own way (spawn, call_soon,
  // call_later); the work records `name` and releases the waiting fiber.
  auto handler_hands_over = [&](const char* name, auto hand_over) {
    weave::Event done;
    auto waiter = loop.spawn([&] { done.wait(); });
    after_1ms([&] {
      hand_over([&seen, &done, name] {
        seen.push_back(name);
        done.set();
      });
    });
    driver.run_until_complete(waiter);
  };
  handler_hands_over("spawned", [&](auto work) { loop.spawn(work); });
  handler_hands_over("called", [&](auto work) { loop.call_soon(work); });
  // A timer armed while the loop sleeps until a later one must wake it on time, not when the
  // later one is due.
  auto late = loop.spawn([&] { weave::this_fiber::sleep_for(1h); });
  handler_hands_over("fired", [&](auto work) { loop.call_later(5ms, work); });
  late.cancel();
  EXPECT_THROW(driver.run_until_complete(late), weave::Cancelled);

  EXPECT_EQ(seen, (std::vector<std::string>{"woken", "spawned", "called", "fired"}));
  watchdog.cancel();
}

TEST(AsioDriver, OneEmbedderPerLoop) {
  asio::io_context io;
  weave::Loop loop;
  AsioDriver driver(io, loop);
  EXPECT_EQ(weave::bridge::Embedder::of(loop), &driver);
  EXPECT_THROW(AsioDriver(io, loop), std::logic_error);
}

TEST(AsioDriver, AfterTheDriverIsGoneTheIoContextRunsOutOfWork) {
  asio::io_context io;
  weave::Loop loop;
  { AsioDriver driver(io, loop); }
  EXPECT_EQ(weave::bridge::Embedder::of(loop), nullptr);
  io.run();  // returns: the driver's waits were cancelled, and their handlers do nothing
  EXPECT_GE(loop.native_handle(), 0) << "the loop's fd was given back, not closed";
  loop.spawn([] {});
  loop.run();
}

}  // namespace
