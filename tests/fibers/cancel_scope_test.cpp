// Cancel scopes: fail_after / move_on_after / shield and CancelScope itself. Trio's semantics:
// deadlines nest and the earliest wins, the scope that caused a cancellation is the one that
// reports it, Task::cancel() is never taken for a timeout, a shield defers what comes from
// outside it.

#include "weave/cancel_scope.hpp"
// ^ first, on its own: proves the header under test is self-contained

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "weave/clock.hpp"
#include "weave/errors.hpp"
#include "weave/loop.hpp"
#include "weave/run.hpp"
#include "weave/task.hpp"
#include "weave/this_fiber.hpp"

namespace {

using namespace std::chrono_literals;
using std::chrono::nanoseconds;
using weave::this_fiber::sleep_for;

weave::Loop::Options manual_time(weave::ManualClock& clock) {
  weave::Loop::Options options;
  options.clock = &clock;
  return options;
}

// Loop time since the start of a ManualClock (which starts at zero), from inside a fiber.
nanoseconds now() { return weave::Loop::current().time().time_since_epoch(); }

// What `fn` threw: "timeout", "cancelled", "runtime_error: <what>", or "nothing".
template <class F>
std::string outcome_of(F&& fn) {
  try {
    fn();
  } catch (const weave::TimeoutError&) {
    return "timeout";
  } catch (const weave::Cancelled&) {
    return "cancelled";
  } catch (const std::runtime_error& e) {
    return std::string("runtime_error: ") + e.what();
  }
  return "nothing";
}

// ---- Nesting: the earliest deadline wins, the right scope reports it ---------------------------

TEST(CancelScope, InnerEarlierDeadlineIsReportedByTheInnerScope) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::string inner;
    nanoseconds inner_at{};
    weave::fail_after(2s, [&] {
      inner = outcome_of([] { weave::fail_after(1s, [] { sleep_for(10s); }); });
      inner_at = now();
      sleep_for(500ms);  // the outer scope is still good for another half second
    });
    EXPECT_EQ(inner, "timeout");
    EXPECT_EQ(inner_at, 1s);
    EXPECT_EQ(now(), 1500ms);
  });
}

TEST(CancelScope, OuterEarlierDeadlinePassesThroughTheInnerScope) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    bool inner_returned = false;
    std::optional<bool> inner_result;
    std::string outer = outcome_of([&] {
      weave::fail_after(1s, [&] {
        inner_result = weave::move_on_after(5s, [] { sleep_for(10s); });
        inner_returned = true;  // must not happen: the cancellation is the outer scope's
      });
    });
    EXPECT_EQ(outer, "timeout");
    EXPECT_FALSE(inner_returned) << "move_on_after swallowed the outer scope's cancellation";
    EXPECT_FALSE(inner_result.has_value());
    EXPECT_EQ(now(), 1s);
  });
}

TEST(CancelScope, EqualDeadlinesAreReportedByTheOutermostScope) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    const weave::TimePoint at = weave::Loop::current().time() + 1s;
    bool inner_saw_its_timeout = false;
    bool outer_cut_short = weave::move_on_at(at, [&] {
      try {
        weave::fail_at(at, [] { sleep_for(10s); });
      } catch (const weave::TimeoutError&) {
        inner_saw_its_timeout = true;
      }
    });
    EXPECT_TRUE(outer_cut_short);
    EXPECT_FALSE(inner_saw_its_timeout) << "both expired: the outermost scope must report it";
    EXPECT_EQ(now(), 1s);
  });
}

TEST(CancelScope, WhenBothScopesAreCancelledTheOutermostOneOwnsTheCancellation) {
  weave::Loop loop;
  loop.run_until_complete(loop.spawn([] {
    weave::CancelScope outer;
    {
      weave::CancelScope inner;
      inner.cancel();
      outer.cancel();
      try {
        weave::this_fiber::yield();
        ADD_FAILURE() << "the checkpoint did not throw";
      } catch (const weave::Cancelled& c) {
        EXPECT_TRUE(outer.owns(c));
        EXPECT_FALSE(inner.owns(c));
      }
    }
  }));
}

TEST(CancelScope, ThreeLevelsTheMiddleDeadlineIsReportedByTheMiddleScope) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::vector<std::string> log;
    bool outer = weave::move_on_after(3s, [&] {
      bool middle = weave::move_on_after(1s, [&] {
        bool inner = weave::move_on_after(2s, [&] { sleep_for(10s); });
        log.push_back(inner ? "inner cut" : "inner done");
      });
      log.push_back(middle ? "middle cut" : "middle done");
    });
    log.push_back(outer ? "outer cut" : "outer done");
    EXPECT_EQ(log, (std::vector<std::string>{"middle cut", "outer done"}));
    EXPECT_EQ(now(), 1s);
  });
}

// ---- Reschedule ------------------------------------------------------------------------------

TEST(CancelScope, RescheduleEarlierFiresAtTheNewDeadline) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::string r = outcome_of([] {
      weave::fail_after(10s, [](weave::CancelScope& scope) {
        scope.reschedule(weave::Loop::current().time() + 1s);
        sleep_for(5s);
      });
    });
    EXPECT_EQ(r, "timeout");
    EXPECT_EQ(now(), 1s);
  });
}

TEST(CancelScope, RescheduleLaterExtendsTheDeadline) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    int v = weave::fail_after(1s, [](weave::CancelScope& scope) {
      scope.reschedule(scope.deadline() + 2s);
      sleep_for(2s);  // past the first deadline, within the new one
      return 7;
    });
    EXPECT_EQ(v, 7);
    EXPECT_EQ(now(), 2s);
  });
}

TEST(CancelScope, RescheduleToThePastCancelsAtTheNextCheckpoint) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    sleep_for(5s);
    std::vector<std::string> log;
    bool cut = weave::move_on_after(10s, [&](weave::CancelScope& scope) {
      scope.reschedule(weave::TimePoint{});  // long gone
      EXPECT_TRUE(scope.cancel_called());
      log.push_back("before checkpoint");
      weave::this_fiber::yield();
      log.push_back("after checkpoint");
    });
    EXPECT_TRUE(cut);
    EXPECT_EQ(log, std::vector<std::string>{"before checkpoint"});
    EXPECT_EQ(now(), 5s);
  });
}

TEST(CancelScope, RescheduleToTheEndOfTimeRemovesTheDeadline) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    bool cut = weave::move_on_after(1s, [](weave::CancelScope& scope) {
      scope.reschedule(weave::TimePoint::max());
      sleep_for(1h);
    });
    EXPECT_FALSE(cut);
    EXPECT_EQ(now(), 1h);
  });
}

TEST(CancelScope, RescheduleDoesNotUncancelAScope) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    bool cut = weave::move_on_after(10s, [](weave::CancelScope& scope) {
      scope.cancel();
      scope.reschedule(weave::Loop::current().time() + 1h);
      EXPECT_TRUE(scope.cancel_called());
      sleep_for(1s);
    });
    EXPECT_TRUE(cut);
    EXPECT_EQ(now(), 0s);
  });
}

// ---- An outer Task::cancel() is never a timeout ----------------------------------------------

TEST(CancelScope, TaskCancelInsideFailAfterIsCancelledNotTimeout) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  std::string seen;
  auto victim = loop.spawn([&] {
    seen = outcome_of([] { weave::fail_after(10s, [] { sleep_for(1h); }); });
    if (seen == "cancelled") throw weave::Cancelled{};
  });
  loop.call_later(1s, [&] { victim.cancel(); });
  loop.run();
  EXPECT_EQ(seen, "cancelled");
  EXPECT_TRUE(victim.cancelled());
  EXPECT_EQ(loop.time().time_since_epoch(), 1s) << "the scope's deadline timer was left armed";
}

TEST(CancelScope, TaskCancelInsideMoveOnAfterPropagatesInsteadOfReturning) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  bool move_on_returned = false;
  auto victim = loop.spawn([&] {
    weave::move_on_after(10s, [] { sleep_for(1h); });
    move_on_returned = true;
  });
  loop.call_later(1s, [&] { victim.cancel(); });
  loop.run();
  EXPECT_FALSE(move_on_returned);
  EXPECT_TRUE(victim.cancelled());
}

TEST(CancelScope, TaskCancelAndDeadlineAtTheSameMomentTaskCancelWins) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  weave::AnyTask victim;
  // Armed before the scope's deadline (same instant): both have fired when the fiber resumes.
  loop.call_later(1s, [&] { victim.cancel(); });
  std::string seen;
  victim =
      loop.spawn([&] { seen = outcome_of([] { weave::fail_after(1s, [] { sleep_for(1h); }); }); });
  loop.run();
  EXPECT_EQ(seen, "cancelled");
}

TEST(CancelScope, TaskCancelBeforeTheScopeOpensIsStillDeliveredInsideIt) {
  weave::Loop loop;
  std::string seen;
  auto t = loop.spawn([&] {
    weave::current_task().cancel();  // pending: delivered at the next checkpoint
    seen = outcome_of([] { weave::move_on_after(1h, [] { weave::this_fiber::yield(); }); });
  });
  loop.run();
  EXPECT_EQ(seen, "cancelled");
}

// ---- Shield --------------------------------------------------------------------------------

TEST(CancelScope, ShieldDefersTaskCancelUntilItFinishes) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  std::vector<std::string> log;
  auto t = loop.spawn([&] {
    weave::shield([&] {
      sleep_for(2s);
      log.push_back("shield done at " + std::to_string(now() / 1s) + "s");
    });
    try {
      sleep_for(1s);
      log.push_back("slept after the shield");
    } catch (const weave::Cancelled&) {
      log.push_back("cancelled at " + std::to_string(now() / 1s) + "s");
      throw;
    }
  });
  loop.call_later(1s, [&] { EXPECT_TRUE(t.cancel()); });
  loop.run();
  EXPECT_EQ(log, (std::vector<std::string>{"shield done at 2s", "cancelled at 2s"}));
  EXPECT_TRUE(t.cancelled());
}

TEST(CancelScope, ShieldDefersAnOuterDeadlineToTheFirstCheckpointAfterIt) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    bool shield_finished = false;
    std::string r = outcome_of([&] {
      weave::fail_after(1s, [&] {
        weave::shield([&] {
          sleep_for(3s);
          shield_finished = true;
        });
        sleep_for(1s);
      });
    });
    EXPECT_TRUE(shield_finished);
    EXPECT_EQ(r, "timeout");
    EXPECT_EQ(now(), 3s);
  });
}

TEST(CancelScope, ShieldReturnsItsValue) {
  weave::Loop loop;
  auto t = loop.spawn([] { return weave::shield([] { return std::make_unique<int>(42); }); });
  EXPECT_EQ(*loop.run_until_complete(t), 42);
}

TEST(CancelScope, ADeadlineInsideAShieldStillWorks) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    bool cut = weave::shield([] { return weave::move_on_after(1s, [] { sleep_for(5s); }); });
    EXPECT_TRUE(cut);
    EXPECT_EQ(now(), 1s);
  });
}

TEST(CancelScope, CancelDeferredByAShieldEndsTheTaskCancelledEvenWithoutAnotherCheckpoint) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  auto t = loop.spawn([] {
    weave::shield([] { sleep_for(2s); });
    return 5;  // no checkpoint left: the pending cancel() still decides the outcome
  });
  loop.call_later(1s, [&] { t.cancel(); });
  loop.run();
  EXPECT_TRUE(t.cancelled());
}

// ---- Deadlines already past ---------------------------------------------------------------

TEST(CancelScope, AZeroTimeoutExpiresAtTheFirstCheckpointWithoutTimePassing) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    sleep_for(1s);
    EXPECT_EQ(outcome_of([] { weave::fail_after(0s, [] { sleep_for(1h); }); }), "timeout");
    EXPECT_EQ(now(), nanoseconds(1s));
  });
}

TEST(CancelScope, ADeadlineInThePastExpiresAtTheFirstCheckpoint) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    sleep_for(10s);
    const weave::TimePoint past = weave::Loop::current().time() - 5s;
    EXPECT_EQ(outcome_of([&] { weave::fail_at(past, [] { weave::this_fiber::yield(); }); }),
              "timeout");
    EXPECT_TRUE(weave::move_on_at(past, [] { sleep_for(1s); }));
    EXPECT_EQ(now(), nanoseconds(10s));
  });
}

TEST(CancelScope, APastDeadlineDoesNotInterruptCodeWithoutACheckpoint) {
  // Cancellation is cooperative: code that never suspends runs to its end, and the scope
  // then returns its value (the cancellation was never thrown, so there is nothing to report).
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    int steps = 0;
    std::optional<int> v = weave::move_on_after(-1s, [&] {
      for (int i = 0; i < 3; ++i) ++steps;
      return steps;
    });
    EXPECT_EQ(v, 3);
    EXPECT_EQ(weave::fail_after(-1s, [] { return 7; }), 7);
  });
}

// A timeout meaning "never" (Duration::max()) must saturate at TimePoint::max(): a plain
// now + d would overflow (UB) and wrap to a deadline in the past, cutting the scope short.
TEST(CancelScope, AnEndlessTimeoutNeverExpires) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    sleep_for(1s);
    EXPECT_FALSE(weave::move_on_after(weave::Duration::max(), [] { sleep_for(1s); }));
    EXPECT_EQ(weave::fail_after(weave::Duration::max(), [] { return 1; }), 1);
  });
}

// ---- move_on results ----------------------------------------------------------------------

TEST(CancelScope, MoveOnForVoidReportsWhetherItWasCutShort) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    EXPECT_FALSE(weave::move_on_after(2s, [] { sleep_for(1s); }));
    EXPECT_TRUE(weave::move_on_after(1s, [] { sleep_for(2s); }));
    EXPECT_EQ(now(), 2s);
  });
}

TEST(CancelScope, MoveOnForAValueGivesTheValueOrNothing) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::optional<std::string> done = weave::move_on_after(2s, [] {
      sleep_for(1s);
      return std::string("value");
    });
    std::optional<std::string> cut = weave::move_on_after(1s, [] {
      sleep_for(2s);
      return std::string("too late");
    });
    EXPECT_EQ(done, "value");
    EXPECT_EQ(cut, std::nullopt);
  });
}

TEST(CancelScope, MoveOnWorksWithMoveOnlyValues) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::optional<std::unique_ptr<int>> v =
        weave::move_on_after(1s, [] { return std::make_unique<int>(9); });
    ASSERT_TRUE(v.has_value());
    EXPECT_EQ(**v, 9);
  });
}

// ---- Exceptions from inside pass through unchanged ------------------------------------------

struct NotAStdException {
  int code;
};

TEST(CancelScope, ExceptionsFromInsidePassThroughUnchanged) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    EXPECT_EQ(outcome_of([] { weave::fail_after(1s, [] { throw std::runtime_error("boom"); }); }),
              "runtime_error: boom");
    EXPECT_EQ(
        outcome_of([] { weave::move_on_after(1s, [] { throw std::runtime_error("bang"); }); }),
        "runtime_error: bang");
    EXPECT_EQ(outcome_of([] { weave::shield([] { throw std::runtime_error("crash"); }); }),
              "runtime_error: crash");
    try {
      weave::fail_after(1s, [] { throw NotAStdException{7}; });
      ADD_FAILURE() << "nothing thrown";
    } catch (const NotAStdException& e) {
      EXPECT_EQ(e.code, 7);
    }
  });
}

TEST(CancelScope, AnErrorThrownWhileHandlingTheDeadlineIsNotTurnedIntoATimeout) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::string r = outcome_of([] {
      weave::fail_after(1s, [] {
        try {
          sleep_for(5s);
        } catch (const weave::Cancelled&) {
          throw std::runtime_error("cleanup failed");
        }
      });
    });
    EXPECT_EQ(r, "runtime_error: cleanup failed");
  });
}

TEST(CancelScope, ATimeoutErrorThrownByTheCodeInsideMoveOnIsNotSwallowed) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::string r =
        outcome_of([] { weave::move_on_after(1h, [] { throw weave::TimeoutError("mine"); }); });
    EXPECT_EQ(r, "timeout");
  });
}

// ---- Level-triggered, owned, and direct use --------------------------------------------------

TEST(CancelScope, ACancelledScopeKeepsThrowingAtEveryCheckpointUntilLeft) {
  weave::Loop loop;
  int thrown = 0;
  auto t = loop.spawn([&] {
    weave::CancelScope scope;
    scope.cancel();
    for (int i = 0; i < 3; ++i) {
      try {
        weave::this_fiber::yield();
      } catch (const weave::Cancelled& c) {
        EXPECT_TRUE(scope.owns(c));
        ++thrown;
      }
    }
  });
  loop.run_until_complete(t);
  EXPECT_EQ(thrown, 3);
}

TEST(CancelScope, CancelFromAnotherFiberWakesTheScopeAtOnce) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  weave::CancelScope* open_scope = nullptr;
  nanoseconds woke_at{};
  bool owned = false;
  auto sleeper = loop.spawn([&] {
    weave::CancelScope scope;
    open_scope = &scope;
    try {
      sleep_for(1h);
    } catch (const weave::Cancelled& c) {
      owned = scope.owns(c);
      woke_at = now();
    }
    open_scope = nullptr;
  });
  auto canceller = loop.spawn([&] {
    sleep_for(3s);
    ASSERT_NE(open_scope, nullptr);
    open_scope->cancel();
  });
  loop.run();
  EXPECT_TRUE(owned);
  EXPECT_EQ(woke_at, 3s);
  EXPECT_FALSE(sleeper.cancelled()) << "the scope's cancellation is not the task's";
}

TEST(CancelScope, LeavingAScopeDisarmsItsDeadline) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  auto t = loop.spawn([] { return weave::fail_after(1h, [] { return 1; }); });
  loop.run();  // returns once nothing is left: an armed deadline would jump the clock to 1 h
  EXPECT_EQ(t.get(), 1);
  EXPECT_EQ(loop.time().time_since_epoch(), 0s);
}

TEST(CancelScope, CallableMayTakeTheScope) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    bool cut = weave::move_on_after(1h, [](weave::CancelScope& scope) {
      EXPECT_FALSE(scope.cancel_called());
      EXPECT_FALSE(scope.shielded());
      scope.cancel();
      sleep_for(1s);
    });
    EXPECT_TRUE(cut);
    EXPECT_TRUE(weave::shield([](weave::CancelScope& scope) { return scope.shielded(); }));
  });
}

// ---- Outside a fiber -----------------------------------------------------------------------

TEST(CancelScope, ScopesOutsideAFiberThrowLogicError) {
  weave::Loop loop;  // a loop exists, but this code is not a fiber
  EXPECT_THROW(weave::CancelScope scope, std::logic_error);
  EXPECT_THROW(weave::fail_after(1s, [] {}), std::logic_error);
  EXPECT_THROW(weave::move_on_after(1s, [] {}), std::logic_error);
  EXPECT_THROW(weave::fail_at(weave::TimePoint::max(), [] {}), std::logic_error);
  EXPECT_THROW(weave::move_on_at(weave::TimePoint::max(), [] {}), std::logic_error);
  EXPECT_THROW(weave::shield([] {}), std::logic_error);
}

TEST(CancelScope, ScopesWithNoLoopAtAllThrowLogicError) {
  EXPECT_THROW(weave::fail_after(1s, [] {}), std::logic_error);
  EXPECT_THROW(weave::shield([] {}), std::logic_error);
}

}  // namespace
