// Signals on the loop: add/remove_signal_handler, SignalSet and wait_for_signal.

#include "weave/net/signals.hpp"
// ^ first, on its own: proves the header under test is self-contained

#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "virtual_time.hpp"
#include "weave/cancel_scope.hpp"
#include "weave/clock.hpp"
#include "weave/errors.hpp"
#include "weave/executor.hpp"
#include "weave/loop.hpp"
#include "weave/task.hpp"

namespace {

using namespace std::chrono_literals;
using weave::net::add_signal_handler;
using weave::net::remove_signal_handler;
using weave::net::SignalSet;

// The handler installed for a signal right now.
void (*disposition(int sig))(int) {
  struct sigaction sa {};
  ::sigaction(sig, nullptr, &sa);
  return sa.sa_handler;
}

// Runs the loop until `done` holds, failing (instead of hanging) after a few real seconds.
template <class Pred>
void run_until(weave::Loop& loop, Pred done) {
  auto deadline = std::chrono::steady_clock::now() + 10s;
  std::function<void()> check;
  check = [&] {
    if (done() || std::chrono::steady_clock::now() > deadline)
      loop.stop();
    else
      loop.call_later(1ms, check);
  };
  loop.call_soon(check);
  loop.run_forever();
  EXPECT_TRUE(done()) << "timed out";
}

class Signals : public ::testing::TestWithParam<int> {};

TEST_P(Signals, RaiseRunsTheHandlerOnTheLoopThread) {
  const int sig = GetParam();
  auto before = disposition(sig);
  weave::Loop loop;
  std::vector<int> got;
  std::thread::id ran_on;
  add_signal_handler(
      sig,
      [&](int s) {
        got.push_back(s);
        ran_on = std::this_thread::get_id();
      },
      loop);
  EXPECT_NE(disposition(sig), before);
  ASSERT_EQ(::raise(sig), 0);
  EXPECT_TRUE(got.empty());  // not inside the real signal handler: later, on the loop
  loop.run();                // the delivery is work for run()
  EXPECT_EQ(got, std::vector<int>{sig});
  EXPECT_EQ(ran_on, std::this_thread::get_id());
  EXPECT_TRUE(remove_signal_handler(sig, loop));
  EXPECT_EQ(disposition(sig), before);
}

TEST_P(Signals, KillToTheProcessReachesTheHandler) {
  const int sig = GetParam();
  weave::Loop loop;
  int calls = 0;
  add_signal_handler(
      sig, [&] { ++calls; }, loop);
  loop.call_soon([&] { ::kill(::getpid(), sig); });
  run_until(loop, [&] { return calls == 1; });
  remove_signal_handler(sig, loop);
}

INSTANTIATE_TEST_SUITE_P(Common, Signals, ::testing::Values(SIGINT, SIGTERM, SIGHUP, SIGCHLD),
                         [](const auto& info) {
                           switch (info.param) {
                             case SIGINT:
                               return std::string("SIGINT");
                             case SIGTERM:
                               return std::string("SIGTERM");
                             case SIGHUP:
                               return std::string("SIGHUP");
                             default:
                               return std::string("SIGCHLD");
                           }
                         });

volatile std::sig_atomic_t g_plain_calls = 0;
extern "C" void plain_handler(int) { g_plain_calls = g_plain_calls + 1; }

TEST(SignalHandler, RemovalRestoresTheEarlierHandler) {
  struct sigaction mine {
  }, saved{};
  mine.sa_handler = &plain_handler;
  sigemptyset(&mine.sa_mask);
  ASSERT_EQ(::sigaction(SIGUSR1, &mine, &saved), 0);
  g_plain_calls = 0;
  {
    weave::Loop loop;
    int weave_calls = 0;
    add_signal_handler(
        SIGUSR1, [&] { ++weave_calls; }, loop);
    ::raise(SIGUSR1);
    loop.run();
    EXPECT_EQ(weave_calls, 1);
    EXPECT_EQ(g_plain_calls, 0);  // taken over while the loop handles it
    EXPECT_TRUE(remove_signal_handler(SIGUSR1, loop));
    EXPECT_EQ(disposition(SIGUSR1), &plain_handler);
    ::raise(SIGUSR1);
    loop.run();
    EXPECT_EQ(weave_calls, 1);
    EXPECT_EQ(g_plain_calls, 1);  // back to the earlier handler
  }
  ::sigaction(SIGUSR1, &saved, nullptr);
}

TEST(SignalHandler, RemovalRestoresIgnoreAndDefault) {
  auto saved = ::signal(SIGUSR2, SIG_IGN);
  weave::Loop loop;
  add_signal_handler(
      SIGUSR2, [] {}, loop);
  remove_signal_handler(SIGUSR2, loop);
  EXPECT_EQ(disposition(SIGUSR2), SIG_IGN);
  ::signal(SIGUSR2, SIG_DFL);
  add_signal_handler(
      SIGUSR2, [] {}, loop);
  remove_signal_handler(SIGUSR2, loop);
  EXPECT_EQ(disposition(SIGUSR2), SIG_DFL);
  ::signal(SIGUSR2, saved);
}

TEST(SignalHandler, AddReplacesTheLoopsHandlerAndRemoveSaysWhetherThereWasOne) {
  weave::Loop loop;
  std::vector<std::string> log;
  EXPECT_FALSE(remove_signal_handler(SIGHUP, loop));
  add_signal_handler(
      SIGHUP, [&] { log.push_back("first"); }, loop);
  add_signal_handler(
      SIGHUP, [&] { log.push_back("second"); }, loop);
  ::raise(SIGHUP);
  loop.run();
  EXPECT_EQ(log, std::vector<std::string>{"second"});
  EXPECT_TRUE(remove_signal_handler(SIGHUP, loop));
  EXPECT_FALSE(remove_signal_handler(SIGHUP, loop));
  EXPECT_EQ(disposition(SIGHUP), SIG_DFL);
}

TEST(SignalHandler, EveryDeliveryRunsTheHandlerOnce) {
  weave::Loop loop;
  int calls = 0;
  add_signal_handler(
      SIGHUP, [&] { ++calls; }, loop);
  // Each raise() is delivered before it returns (the signal is not blocked): three deliveries,
  // all counted before the loop runs.
  ::raise(SIGHUP);
  ::raise(SIGHUP);
  ::raise(SIGHUP);
  loop.run();
  EXPECT_EQ(calls, 3);
  remove_signal_handler(SIGHUP, loop);
}

TEST(SignalHandler, DoesNotKeepRunGoing) {
  weave::Loop loop;
  add_signal_handler(
      SIGHUP, [] {}, loop);
  auto t0 = std::chrono::steady_clock::now();
  loop.run();  // nothing to do: returns at once
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  remove_signal_handler(SIGHUP, loop);
}

TEST(SignalHandler, AHandlerMayRemoveItselfWhileItRuns) {
  weave::Loop loop;
  int calls = 0;
  add_signal_handler(
      SIGHUP,
      [&] {
        ++calls;
        EXPECT_TRUE(remove_signal_handler(SIGHUP, loop));
      },
      loop);
  ::raise(SIGHUP);
  ::raise(SIGHUP);  // counted, but the handler is gone by the time its turn comes
  loop.run();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(disposition(SIGHUP), SIG_DFL);
}

TEST(SignalHandler, AnExceptionGoesToTheLoopsExceptionHandler) {
  weave::Loop loop;
  std::vector<std::string> errors;
  loop.set_exception_handler([&](const weave::ErrorContext& c) { errors.push_back(c.message); });
  add_signal_handler(
      SIGHUP, [] { throw std::runtime_error("boom"); }, loop);
  int later = 0;
  ::raise(SIGHUP);
  loop.call_soon([&] { ++later; });
  loop.run();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("signal 1"), std::string::npos) << errors[0];
  EXPECT_EQ(later, 1);  // the loop went on
  remove_signal_handler(SIGHUP, loop);
}

TEST(SignalHandler, RefusesSignalsItCannotHandle) {
  weave::Loop loop;
  for (int sig : {0, -1, 65, 1000, SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGFPE, SIGILL})
    EXPECT_THROW(add_signal_handler(
                     sig, [] {}, loop),
                 std::invalid_argument)
        << sig;
  EXPECT_THROW(remove_signal_handler(0, loop), std::invalid_argument);
  EXPECT_THROW(SignalSet({SIGINT, SIGKILL}, loop), std::invalid_argument);
  EXPECT_EQ(disposition(SIGINT), SIG_DFL);  // nothing taken over by the refused set
  EXPECT_THROW(add_signal_handler(SIGHUP, std::function<void(int)>(), loop), std::invalid_argument);
}

// The signal reaches whichever thread the kernel picks; the handler still runs on the loop's
// thread, while that thread sleeps in epoll.
TEST(SignalHandler, ASignalTakenByAnotherThreadRunsOnTheLoop) {
  weave::Loop loop;
  std::thread::id ran_on;
  int calls = 0;
  add_signal_handler(
      SIGHUP,
      [&] {
        ++calls;
        ran_on = std::this_thread::get_id();
      },
      loop);
  std::thread other([] {
    std::this_thread::sleep_for(5ms);  // let the loop go to sleep first
    ::raise(SIGHUP);                   // delivered to this thread
  });
  run_until(loop, [&] { return calls == 1; });
  other.join();
  EXPECT_EQ(ran_on, std::this_thread::get_id());
  remove_signal_handler(SIGHUP, loop);
}

TEST(SignalHandler, ASignalTakenByAnExecutorThreadRunsOnTheLoop) {
  weave::Loop loop;
  std::thread::id ran_on;
  int calls = 0;
  add_signal_handler(
      SIGTERM,
      [&] {
        ++calls;
        ran_on = std::this_thread::get_id();
      },
      loop);
  auto t = loop.spawn([&] {
    std::thread::id pool_thread = weave::to_thread([] {
      ::raise(SIGTERM);
      return std::this_thread::get_id();
    });
    EXPECT_NE(pool_thread, std::this_thread::get_id());
  });
  loop.run_until_complete(t);
  run_until(loop, [&] { return calls == 1; });
  EXPECT_EQ(ran_on, std::this_thread::get_id());
  remove_signal_handler(SIGTERM, loop);
}

// Two loops on two threads, each handling its own signal, while both run; each signal is sent
// to the other loop's thread.
TEST(SignalHandler, LoopsOnTwoThreadsHandleTheirOwnSignals) {
  std::atomic<int> b_calls{0};
  std::atomic<bool> b_ready{false};
  std::atomic<bool> b_saw_conflict{false};
  std::thread::id b_ran_on;
  weave::Loop* b_loop = nullptr;
  pthread_t b_thread{};
  std::thread b([&] {
    weave::Loop loop;
    b_loop = &loop;
    b_thread = ::pthread_self();
    add_signal_handler(
        SIGUSR2,
        [&] {
          b_ran_on = std::this_thread::get_id();
          ++b_calls;
          loop.stop();
        },
        loop);
    loop.call_soon([&] { b_ready = true; });
    loop.run_forever();
    // SIGHUP belongs to the main thread's loop now.
    try {
      add_signal_handler(
          SIGHUP, [] {}, loop);
    } catch (const std::logic_error&) {
      b_saw_conflict = true;
    }
    remove_signal_handler(SIGUSR2, loop);
  });
  while (!b_ready) std::this_thread::sleep_for(1ms);

  weave::Loop loop;
  std::thread::id a_ran_on;
  int a_calls = 0;
  // Added while the other thread's loop runs.
  add_signal_handler(
      SIGHUP,
      [&] {
        a_ran_on = std::this_thread::get_id();
        ++a_calls;
      },
      loop);
  EXPECT_THROW(add_signal_handler(
                   SIGUSR2, [] {}, loop),
               std::logic_error);
  ::pthread_kill(b_thread, SIGHUP);  // to B's thread, for A's loop
  run_until(loop, [&] { return a_calls == 1; });
  EXPECT_EQ(a_ran_on, std::this_thread::get_id());
  ::raise(SIGUSR2);  // to this thread, for B's loop
  b.join();
  EXPECT_EQ(b_calls, 1);
  EXPECT_NE(b_ran_on, std::this_thread::get_id());
  EXPECT_TRUE(b_saw_conflict);
  remove_signal_handler(SIGHUP, loop);
  EXPECT_EQ(disposition(SIGUSR2), SIG_DFL);
  (void)b_loop;
}

TEST(SignalHandler, ALoopDestroyedWithAQueuedSignalGivesItsSignalsBack) {
  {
    weave::Loop loop;
    add_signal_handler(
        SIGHUP, [] { ADD_FAILURE() << "must not run"; }, loop);
    ::raise(SIGHUP);  // queued, never dispatched
  }
  EXPECT_EQ(disposition(SIGHUP), SIG_DFL);
}

TEST(SignalHandler, ASignalLeftByADestroyedLoopCanBeTakenByAnother) {
  {
    weave::Loop loop;
    add_signal_handler(
        SIGUSR1, [] {}, loop);
  }  // not removed
  weave::Loop loop;
  int calls = 0;
  add_signal_handler(
      SIGUSR1, [&] { ++calls; }, loop);
  ::raise(SIGUSR1);
  loop.run();
  EXPECT_EQ(calls, 1);
  remove_signal_handler(SIGUSR1, loop);
  EXPECT_EQ(disposition(SIGUSR1), SIG_DFL);  // what it was before the first loop
}

// A loop destroyed with its handler still installed must not swallow the signal for good:
// the first delivery puts the earlier disposition back and reaches it.
TEST(SignalHandler, ASignalForADestroyedLoopGoesToTheEarlierHandler) {
  struct sigaction mine {
  }, saved{};
  mine.sa_handler = &plain_handler;
  sigemptyset(&mine.sa_mask);
  ASSERT_EQ(::sigaction(SIGUSR2, &mine, &saved), 0);
  g_plain_calls = 0;
  {
    weave::Loop loop;
    add_signal_handler(
        SIGUSR2, [] { ADD_FAILURE() << "the loop is gone"; }, loop);
  }  // not removed
  EXPECT_NE(disposition(SIGUSR2), &plain_handler);
  ::raise(SIGUSR2);
  EXPECT_EQ(g_plain_calls, 1);
  EXPECT_EQ(disposition(SIGUSR2), &plain_handler);
  // The signal can be taken again, and given back to the same earlier handler.
  {
    weave::Loop loop;
    int calls = 0;
    add_signal_handler(
        SIGUSR2, [&] { ++calls; }, loop);
    ::raise(SIGUSR2);
    loop.run();
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(g_plain_calls, 1);
    remove_signal_handler(SIGUSR2, loop);
    EXPECT_EQ(disposition(SIGUSR2), &plain_handler);
  }
  ::sigaction(SIGUSR2, &saved, nullptr);
}

TEST(SignalHandler, SigchldFromARealChild) {
  weave::Loop loop;
  int calls = 0;
  add_signal_handler(
      SIGCHLD, [&] { ++calls; }, loop);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) ::_exit(7);
  run_until(loop, [&] { return calls >= 1; });
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_EQ(WEXITSTATUS(status), 7);
  remove_signal_handler(SIGCHLD, loop);
}

// ---- SignalSet ---------------------------------------------------------------------------------

TEST(SignalSet, WaitReturnsTheSignalThatArrived) {
  weave::Loop loop;
  SignalSet set({SIGINT, SIGTERM}, loop);
  EXPECT_TRUE(set.contains(SIGINT));
  EXPECT_FALSE(set.contains(SIGHUP));
  auto waiter = loop.spawn([&] { return set.wait(); });
  loop.call_soon([] { ::raise(SIGTERM); });
  EXPECT_EQ(loop.run_until_complete(waiter), SIGTERM);
}

TEST(SignalSet, DeliveriesBeforeWaitAreKeptInOrderOncePerSignal) {
  weave::Loop loop;
  SignalSet set({SIGINT, SIGTERM, SIGHUP}, loop);
  ::raise(SIGHUP);
  ::raise(SIGINT);
  ::raise(SIGHUP);  // still pending in the set: kept once, like the kernel's pending set
  auto t = loop.spawn([&] {
    std::vector<int> got;
    got.push_back(set.wait());
    got.push_back(set.wait());
    EXPECT_EQ(set.try_wait(), std::nullopt);
    return got;
  });
  EXPECT_EQ(loop.run_until_complete(t), (std::vector<int>{SIGHUP, SIGINT}));
}

TEST(SignalSet, TwoSetsAndAHandlerEachGetEveryDelivery) {
  weave::Loop loop;
  SignalSet a({SIGHUP}, loop), b({SIGHUP, SIGUSR1}, loop);
  int handler_calls = 0;
  add_signal_handler(
      SIGHUP, [&] { ++handler_calls; }, loop);
  ::raise(SIGHUP);
  loop.run();
  EXPECT_EQ(a.try_wait(), SIGHUP);
  EXPECT_EQ(b.try_wait(), SIGHUP);
  EXPECT_EQ(handler_calls, 1);
  // The handler goes; the sets keep the signal taken.
  remove_signal_handler(SIGHUP, loop);
  EXPECT_NE(disposition(SIGHUP), SIG_DFL);
  ::raise(SIGHUP);
  loop.run();
  EXPECT_EQ(a.try_wait(), SIGHUP);
}

TEST(SignalSet, DestructionRestoresTheDispositions) {
  weave::Loop loop;
  {
    SignalSet set({SIGINT, SIGTERM}, loop);
    EXPECT_NE(disposition(SIGINT), SIG_DFL);
    set.remove(SIGTERM);
    EXPECT_EQ(disposition(SIGTERM), SIG_DFL);
    EXPECT_FALSE(set.contains(SIGTERM));
    set.add(SIGHUP);
    EXPECT_NE(disposition(SIGHUP), SIG_DFL);
  }
  EXPECT_EQ(disposition(SIGINT), SIG_DFL);
  EXPECT_EQ(disposition(SIGHUP), SIG_DFL);
}

TEST(SignalSet, RemovingASignalDropsItsUndeliveredOccurrence) {
  weave::Loop loop;
  SignalSet set({SIGHUP, SIGUSR1, SIGUSR2}, loop);
  ::raise(SIGUSR1);
  ::raise(SIGHUP);
  ::raise(SIGUSR2);
  loop.run();
  set.remove(SIGHUP);
  EXPECT_EQ(set.try_wait(), SIGUSR1);
  EXPECT_EQ(set.try_wait(), SIGUSR2);
  EXPECT_EQ(set.try_wait(), std::nullopt);
}

TEST(SignalSet, ACancelledWaitTakesNothing) {
  weave::ManualClock clock;
  weave::Loop loop(weave_test::manual_time(clock));
  SignalSet set({SIGHUP}, loop);
  auto t = loop.spawn([&] {
    bool timed_out = weave::move_on_after(1s, [&] { set.wait(); });
    EXPECT_TRUE(timed_out);
    ::raise(SIGHUP);
    return set.wait();
  });
  EXPECT_EQ(loop.run_until_complete(t), SIGHUP);
}

// A waiter woken for a delivery but cancelled before it ran hands the delivery to the next
// waiter: nothing is lost.
TEST(SignalSet, AWaiterCancelledAfterItsWakeUpPassesTheSignalOn) {
  weave::Loop loop;
  SignalSet set({SIGHUP}, loop);
  auto first = loop.spawn([&] { return set.wait(); });
  auto second = loop.spawn([&] { return set.wait(); });
  // The handler runs in the same dispatch, after the set woke `first`: `first` is cancelled
  // before it could take the signal.
  add_signal_handler(
      SIGHUP, [&] { first.cancel(); }, loop);
  loop.call_soon([] { ::raise(SIGHUP); });
  EXPECT_EQ(loop.run_until_complete(second), SIGHUP);
  first.join();
  EXPECT_TRUE(first.cancelled());
  remove_signal_handler(SIGHUP, loop);
}

TEST(SignalSet, WaitOutsideAFiberIsAnError) {
  weave::Loop loop;
  SignalSet set({SIGHUP}, loop);
  EXPECT_THROW(set.wait(), std::logic_error);
}

TEST(WaitForSignal, ReturnsTheSignalAndRestoresTheDispositions) {
  weave::Loop loop;
  auto waiter = loop.spawn([] { return weave::net::wait_for_signal({SIGUSR1, SIGUSR2}); });
  loop.spawn([&] {
    EXPECT_NE(disposition(SIGUSR2), SIG_DFL);  // the waiter ran first and took the signals
    ::raise(SIGUSR2);
  });
  EXPECT_EQ(loop.run_until_complete(waiter), SIGUSR2);
  EXPECT_EQ(disposition(SIGUSR1), SIG_DFL);
  EXPECT_EQ(disposition(SIGUSR2), SIG_DFL);
}

TEST(WaitForSignal, ATimeoutRestoresTheDispositions) {
  weave::ManualClock clock;
  weave::Loop loop(weave_test::manual_time(clock));
  auto t = loop.spawn([] {
    return weave::move_on_after(10s, [] { return weave::net::wait_for_signal({SIGINT}); });
  });
  EXPECT_EQ(loop.run_until_complete(t), std::nullopt);
  EXPECT_EQ(disposition(SIGINT), SIG_DFL);
}

}  // namespace
