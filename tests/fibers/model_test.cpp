// A randomized model test across the primitives: for thousands of seeds, a random program of
// fibers runs on one loop, and the run is checked against invariants at every step, whenever the
// loop goes idle, and at the end.
//
// The program: a few worker fibers spawned before the loop runs, and more spawned by the fibers
// themselves (some eager), each running a random script of operations: yield, virtual sleep_for,
// put/get on a bounded Queue<int> (suspending, nowait, and under move_on_after/fail_after),
// holding the Lock (through std::unique_lock) or a permit of a BoundedSemaphore across yields,
// sleeps and other operations, Event wait (plain or timed)/set/clear, Task::cancel() of a random
// task (itself included), a shield around some of the above, a task_group whose children run
// scripts of their own (and may fail or spawn siblings), a gather of freshly spawned tasks, and a
// timed block (a cancel scope around a sub-script). A fiber that receives a Task::cancel() either
// dies or, half the time, swallows it and goes on. A closer fiber ends the program at a random
// moment: it sets the events and shuts the queue down, after which everything must finish.
//
// The invariants:
//   - every item put is got exactly once, or is still in the queue at the end, or was dropped by
//     shutdown(immediate); an item is never got that was not put (nothing lost to a cancelled or
//     timed-out put or get, nothing duplicated); the queue's size() is exactly the number of
//     items the model believes are in it, and never exceeds maxsize();
//   - the lock is held by at most one fiber, and stays with its holder across suspensions; the
//     semaphore's holders never exceed its initial value, and holders + value() never exceed it;
//     both serve their waiters in arrival order (a waiter is never overtaken);
//   - a wait that was cancelled or timed out takes nothing: whenever the loop is idle (every fiber
//     blocked) the lock is locked exactly when the model has a holder, value() + holders equals the
//     initial value, no fiber waits in lock()/acquire() for a free lock/permit, in Event::wait()
//     for a set event, in get()/put() for an item/a slot; at the end the lock is free and the
//     semaphore back at its initial value;
//   - Event::wait() returns only if the event was set when it was called or set() was called since;
//   - cancellation follows asyncio's rules: it is delivered at the suspension point the task is
//     in (no fiber stays blocked in a wait with a cancel() pending, unless a shield holds it
//     back); a task cancelled before it first ran never runs its function; a task that ended with
//     a value had every cancel() accepted for it delivered (and swallowed); a task that ended
//     cancelled was cancelled by someone (the model, or its task group), and if its function
//     returned, a cancellation was still pending then; a task never receives more cancellations
//     than were requested; nothing reaches the inside of a shield;
//   - task_group returns or throws only once every child has finished; it throws an
//     ExceptionGroup holding exactly the children's errors when some failed (even if the parent
//     was cancelled), and the parent's Cancelled otherwise; gather returns the right values in
//     order, or the first failure; with return_exceptions it reports each outcome as it was;
//   - virtual time advances only as the sleeps and timeouts demand: a sleep_for(d) returns exactly
//     d later, a single wait that timed out returns exactly at its deadline, and the run ends no
//     later than the last deadline any fiber set;
//   - no fiber is left blocked: the loop ends with live_fibers() == 0 once the closer has run;
//   - determinism: the same seed gives the same trace (a hash of every event, with its time).
//
// A failure prints the seed (a crash too); `WEAVE_MODEL_SEED=n ./model_test
// --gtest_filter='*OneSeed*'` replays one (add WEAVE_MODEL_VERBOSE=1 for the event log), and
// WEAVE_MODEL_SEEDS=n sets the seeds per block (for a longer soak).

#include "weave/weave.hpp"
// ^ first, on its own: the test uses primitives from all over the umbrella header, and this proves
// it self-contained

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <exception>
#include <functional>
#include <iostream>
#include <iterator>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define WEAVE_MODEL_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define WEAVE_MODEL_SANITIZED 1
#endif
#endif
#ifdef WEAVE_MODEL_SANITIZED
#include <sanitizer/common_interface_defs.h>
#endif

namespace {

using namespace std::chrono_literals;
using weave::Duration;
using weave::TimePoint;

// splitmix64: small, fast, and the same sequence with every compiler and standard library, so a
// seed replays the same program in every build.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : s_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (s_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  int pick(int n) { return static_cast<int>(next() % static_cast<std::uint64_t>(n)); }
  bool chance(int percent) { return pick(100) < percent; }

 private:
  std::uint64_t s_;
};

std::uint64_t mix(std::uint64_t a, std::uint64_t b) {
  Rng r(a * 0x2545f4914f6cdd1dull ^ b);
  return r.next();
}

// What a scripted child throws when its script says "fail".
class ModelError : public std::runtime_error {
 public:
  explicit ModelError(int fiber)
      : std::runtime_error("model error of fiber " + std::to_string(fiber)) {}
};

// Runs `f` when the scope ends (bookkeeping that must happen however the scope is left).
template <class F>
class Defer {
 public:
  explicit Defer(F f) : f_(std::move(f)) {}
  Defer(const Defer&) = delete;
  Defer& operator=(const Defer&) = delete;
  ~Defer() { f_(); }

 private:
  F f_;
};

// Virtual time like weave::ManualClock (autojump), which also calls `on_idle(deadline)` each time
// the loop, with nothing ready to run, would jump to the next timer; the clock moves only if
// on_idle returns true.
class IdleCheckingClock final : public weave::Clock {
 public:
  TimePoint now() const noexcept override { return now_; }
  bool autojump() const noexcept override { return true; }
  void jump_to(TimePoint deadline) noexcept override {
    if (on_idle && !on_idle(deadline)) return;
    if (deadline > now_) now_ = deadline;
  }
  std::function<bool(TimePoint)> on_idle;

 private:
  TimePoint now_{};
};

struct Config {
  int workers;          // fibers spawned before the loop runs
  int max_fibers;       // fibers the program may create in all; further spawns are skipped
  std::size_t maxsize;  // the queue's bound
  int permits;          // the semaphore's initial value
  int close_at_ms;      // when the closer sets the events and shuts the queue down
  bool immediate;       // whether that shutdown is immediate
};

Config config_for(std::uint32_t seed) {
  Rng r(mix(seed, 0xc0ff1e));
  Config c;
  c.workers = 2 + r.pick(5);
  c.max_fibers = 8 + r.pick(24);
  c.maxsize = static_cast<std::size_t>(1 + r.pick(4));
  c.permits = 1 + r.pick(3);
  c.close_at_ms = 2 + r.pick(70);
  c.immediate = r.chance(30);
  return c;
}

// Who may cancel a task: the model only (workers, gathered tasks), or its task group as well.
enum class Role : std::uint8_t { worker, group_child, gather_child };

// Where an item is. It gets an id when a put is attempted, is `in_queue` from the moment a put of
// it returns, then `got` by a get, `dropped` by an immediate shutdown, or found `remaining` when
// the queue is drained at the end.
enum class Where : std::uint8_t { unput, in_queue, got, dropped, remaining };

// What the model knows of one task.
struct Fiber {
  Fiber(int i, Role r, std::uint64_t seed) : id(i), role(r), rng(seed) {}
  int id;
  Role role;
  Rng rng;  // the fiber's own: its script does not depend on what the other fibers draw
  weave::AnyTask task;
  bool started = false;                 // its function began
  bool returned = false;                // its function returned normally
  bool threw = false;                   // its function threw ModelError
  bool cancelled_before_start = false;  // a cancel() was accepted before the function began
  bool unsure = false;  // got a Cancelled from gather that may have been a gathered task's
  bool holds_lock = false;
  bool waiting = false;  // inside a call that may wait (blocked in it, or woken and not yet run)
  int shields = 0;       // shield() calls it is inside
  // A task-level Cancelled that a script caught, counted and rethrew is on its way out: the outer
  // scripts it passes through must not count it again.
  bool cancel_in_flight = false;
  // A task group delivered a cancellation at its end, at a moment the model does not see: a
  // later cancel() may have arrived before or after it, so one may or may not still be pending.
  bool maybe_pending = false;
  int cancels_accepted = 0;  // cancel() calls on it that returned true
  int cancels_caught = 0;    // task-level Cancelled its scripts caught (deliveries)
  std::uint64_t last_cancel = 0, last_caught = 0;  // model sequence numbers of the latest ones
};

// Marks a fiber as inside a waiting call, and counts the fibers inside such calls on one
// primitive, so that the idle check knows who is blocked where.
class Inside {
 public:
  Inside(int& n, Fiber& f) : n_(n), f_(f) {
    ++n_;
    f_.waiting = true;
  }
  Inside(const Inside&) = delete;
  Inside& operator=(const Inside&) = delete;
  ~Inside() {
    --n_;
    f_.waiting = false;
  }

 private:
  int& n_;
  Fiber& f_;
};

// A fiber's place in the line of fibers waiting for the lock or a permit, which are served in
// arrival order: a fiber that had to wait must be at the head of the line when it is served.
class InLine {
 public:
  InLine(std::vector<int>& line, int id, bool waits) : line_(line), id_(id), waits_(waits) {
    if (waits_) line_.push_back(id_);
  }
  InLine(const InLine&) = delete;
  InLine& operator=(const InLine&) = delete;
  ~InLine() {
    if (waits_) line_.erase(std::find(line_.begin(), line_.end(), id_));
  }
  // The fiber ahead of this one, if it was overtaken; -1 if not.
  int overtaken_by() const { return waits_ && line_.front() != id_ ? line_.front() : -1; }

 private:
  std::vector<int>& line_;
  int id_;
  bool waits_;
};

// A task group's children, as the model sees them.
struct GroupBook {
  std::vector<int> children;
  int failed = 0;  // children that threw ModelError
};

// Where a script runs: on which fiber, how deeply nested (groups, gathers and timed blocks nest
// at most twice), and inside which task group's body or child, if any.
struct Ctx {
  Fiber& me;
  int depth;
  weave::TaskGroup* group;
  GroupBook* book;
};

enum class Ev : std::uint8_t {
  start,
  returned,
  fail,
  yield,
  sleep,
  put,
  put_full,
  got,
  get_empty,
  timed_out,
  shut_down,
  locked,
  unlocked,
  acquired,
  released,
  waited,
  set,
  clear,
  cancel,
  caught,
  shield,
  group,
  group_end,
  gather,
  gather_end,
  spawn,
  block,
  close
};
constexpr const char* kEvNames[] = {
    "start",    "returned",  "fail",      "yield",      "sleep",  "put",      "put_full",
    "got",      "get_empty", "timed_out", "shut_down",  "locked", "unlocked", "acquired",
    "released", "waited",    "set",       "clear",      "cancel", "caught",   "shield",
    "group",    "group_end", "gather",    "gather_end", "spawn",  "block",    "close"};
static_assert(std::size(kEvNames) == static_cast<std::size_t>(Ev::close) + 1);

class Model {
 public:
  Model(std::uint32_t seed, bool verbose)
      : seed_(seed),
        verbose_(verbose),
        cfg_(config_for(seed)),
        queue_(cfg_.maxsize),
        sem_(cfg_.permits) {}

  void run();

  std::vector<std::string> errors;
  std::uint64_t trace = 1469598103934665603ull;  // FNV-1a of every event
  std::size_t events = 0;

 private:
  // ---- Bookkeeping ------------------------------------------------------------------------

  void error(const std::string& what) {
    if (errors.size() >= 10 || what == last_error_) return;  // a broken invariant stays broken
    last_error_ = what;
    errors.push_back(loop_ ? "at " + std::to_string(ms(now())) + "ms: " + what : what);
  }
  TimePoint now() const { return loop_->time(); }
  static long long ms(TimePoint t) {
    return static_cast<long long>(
        std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count() / 1000);
  }
  void note(Ev e, int fiber, long long a = 0, long long b = 0) {
    ++events;
    const std::uint64_t words[] = {static_cast<std::uint64_t>(e), static_cast<std::uint64_t>(fiber),
                                   static_cast<std::uint64_t>(a), static_cast<std::uint64_t>(b),
                                   static_cast<std::uint64_t>(now().time_since_epoch().count())};
    for (std::uint64_t w : words) {
      trace ^= w;
      trace *= 1099511628211ull;
    }
    if (verbose_)
      std::cout << "  " << ms(now()) << "ms fiber " << fiber << ": "
                << kEvNames[static_cast<int>(e)] << " " << a << " " << b << "\n";
  }
  // Virtual time may reach `t` because some fiber asked for it.
  void expect_deadline(TimePoint t) {
    if (t > max_deadline_) max_deadline_ = t;
  }
  Duration short_time(Fiber& f) { return std::chrono::milliseconds(f.rng.pick(4)); }

  Fiber& new_fiber(Role role) {
    const int id = static_cast<int>(fibers_.size());
    return fibers_.emplace_back(id, role, mix(seed_, 1000 + id));
  }
  bool room_for_fiber() const { return static_cast<int>(fibers_.size()) < cfg_.max_fibers; }

  // The first thing every scripted function does.
  void begin(Fiber& f) {
    f.started = true;
    if (f.cancelled_before_start)
      error("fiber " + std::to_string(f.id) + " runs although it was cancelled before it started");
    note(Ev::start, f.id);
  }

  // Checked by the running fiber after every operation.
  void check_state(const Ctx& c) {
    if (queue_.size() > queue_.maxsize())
      error("queue size " + std::to_string(queue_.size()) + " exceeds maxsize");
    if (queue_.size() != static_cast<std::size_t>(in_queue_))
      error("queue size " + std::to_string(queue_.size()) + " but " + std::to_string(in_queue_) +
            " items were put and not got");
    if (lock_holder_ != -1 && !lock_.locked())
      error("fiber " + std::to_string(lock_holder_) + " holds the lock, which is not locked");
    if (c.me.holds_lock && lock_holder_ != c.me.id)
      error("fiber " + std::to_string(c.me.id) + " lost the lock to " +
            std::to_string(lock_holder_));
    if (sem_holders_ > cfg_.permits || sem_.value() + sem_holders_ > cfg_.permits)
      error("semaphore: " + std::to_string(sem_holders_) + " holders and value " +
            std::to_string(sem_.value()) + " with " + std::to_string(cfg_.permits) + " permits");
    if (closing_ && !(events_[0].is_set() && events_[1].is_set()))
      error("an event is clear after the closer set it");
  }

  // Called whenever every fiber is blocked (the loop is about to jump the clock).
  void check_idle() {
    if (lock_.locked() != (lock_holder_ != -1))
      error(std::string("idle: the lock is ") + (lock_.locked() ? "locked" : "free") +
            " but the model's holder is " + std::to_string(lock_holder_));
    if (in_lock_ > 0 && !lock_.locked())
      error("idle: " + std::to_string(in_lock_) + " fiber(s) wait in lock() for a free lock");
    if (sem_.value() + sem_holders_ != cfg_.permits)
      error("idle: semaphore value " + std::to_string(sem_.value()) + " + " +
            std::to_string(sem_holders_) + " holders != " + std::to_string(cfg_.permits) +
            " permits: a permit leaked");
    if (in_sem_ > 0 && sem_.value() > 0)
      error("idle: fiber(s) wait in acquire() while the semaphore has " +
            std::to_string(sem_.value()) + " permit(s)");
    for (int e = 0; e < 2; ++e)
      if (in_wait_[e] > 0 && events_[e].is_set())
        error("idle: fiber(s) wait for event " + std::to_string(e) + ", which is set");
    if (in_get_ > 0 && (!queue_.empty() || queue_.is_shutdown()))
      error("idle: fiber(s) blocked in get() while the queue holds " +
            std::to_string(queue_.size()) + " item(s)" +
            (queue_.is_shutdown() ? " and is shut down" : ""));
    if (in_put_ > 0 && (!queue_.full() || queue_.is_shutdown()))
      error("idle: fiber(s) blocked in put() while the queue has room or is shut down");
    // A cancellation is delivered at the suspension point the fiber is in: no fiber stays
    // blocked with a cancel() pending that no shield holds back.
    for (const Fiber& f : fibers_)
      if (f.waiting && f.shields == 0 && f.last_cancel > f.last_caught)
        error("idle: fiber " + std::to_string(f.id) +
              " is blocked although a cancel() accepted for it was never delivered");
  }

  // ---- Items --------------------------------------------------------------------------------

  int new_item() {
    where_.push_back(Where::unput);
    return static_cast<int>(where_.size()) - 1;
  }
  void commit(Fiber& f, int id) {
    if (where_[id] != Where::unput) error("item " + std::to_string(id) + " put twice");
    where_[id] = Where::in_queue;
    ++in_queue_;
    note(Ev::put, f.id, id);
  }
  void take(Fiber& f, int id) {
    if (id < 0 || id >= static_cast<int>(where_.size()) || where_[id] != Where::in_queue) {
      error("fiber " + std::to_string(f.id) + " got item " + std::to_string(id) +
            ", which was not in the queue");
    } else {
      where_[id] = Where::got;
      --in_queue_;
    }
    note(Ev::got, f.id, id);
  }
  void shut_down_seen(Fiber& f) {
    if (!queue_.is_shutdown()) error("QueueShutDown from a queue that is not shut down");
    note(Ev::shut_down, f.id);
  }
  // After a single wait under a timeout: it timed out exactly at its deadline, or succeeded by
  // then.
  void check_timed(Fiber& f, bool timed_out, TimePoint deadline) {
    if (timed_out ? now() != deadline : now() > deadline)
      error("fiber " + std::to_string(f.id) + ": a wait with its deadline at " +
            std::to_string(ms(deadline)) + "ms " + (timed_out ? "timed out" : "succeeded") +
            " at " + std::to_string(ms(now())) + "ms");
    if (timed_out) note(Ev::timed_out, f.id);
  }

  // ---- Operations ---------------------------------------------------------------------------

  void run_script(Ctx& c, int ops);
  void step(Ctx& c);
  void held_step(Ctx& c, bool may_take_permit);

  void op_yield(Ctx& c) {
    note(Ev::yield, c.me.id);
    weave::this_fiber::yield();
  }

  void op_sleep(Ctx& c) {
    const Duration d = short_time(c.me);
    const TimePoint start = now();
    expect_deadline(start + d);
    note(Ev::sleep, c.me.id, ms(start + d));
    weave::this_fiber::sleep_for(d);
    if (now() != start + d)
      error("sleep_for(" + std::to_string(ms(TimePoint(d))) + "ms) from " +
            std::to_string(ms(start)) + "ms returned at " + std::to_string(ms(now())) + "ms");
  }

  void op_put(Ctx& c) {
    const int id = new_item();
    try {
      Inside inside(in_put_, c.me);
      queue_.put(id);
    } catch (const weave::QueueShutDown&) {
      shut_down_seen(c.me);
      return;
    }
    commit(c.me, id);
  }

  void op_put_nowait(Ctx& c) {
    const int id = new_item();
    try {
      queue_.put_nowait(id);
    } catch (const weave::QueueFull&) {
      note(Ev::put_full, c.me.id);
      return;
    } catch (const weave::QueueShutDown&) {
      shut_down_seen(c.me);
      return;
    }
    commit(c.me, id);
  }

  void op_get(Ctx& c) {
    int id;
    try {
      Inside inside(in_get_, c.me);
      id = queue_.get();
    } catch (const weave::QueueShutDown&) {
      shut_down_seen(c.me);
      return;
    }
    take(c.me, id);
  }

  void op_get_nowait(Ctx& c) {
    int id;
    try {
      id = queue_.get_nowait();
    } catch (const weave::QueueEmpty&) {
      note(Ev::get_empty, c.me.id);
      return;
    } catch (const weave::QueueShutDown&) {
      shut_down_seen(c.me);
      return;
    }
    take(c.me, id);
  }

  // A put or get under move_on_after (quietly) or fail_after (TimeoutError).
  void op_timed_queue(Ctx& c) {
    Rng& r = c.me.rng;
    const bool getting = r.chance(50);
    const bool quietly = r.chance(60);
    const Duration d = short_time(c.me);
    const TimePoint deadline = now() + d;
    expect_deadline(deadline);
    bool timed_out = false;
    try {
      if (getting) {
        std::optional<int> got;
        {
          Inside inside(in_get_, c.me);
          if (quietly) {
            got = weave::move_on_after(d, [&] { return queue_.get(); });
          } else {
            try {
              got = weave::fail_after(d, [&] { return queue_.get(); });
            } catch (const weave::TimeoutError&) {
            }
          }
        }
        timed_out = !got;
        if (got) take(c.me, *got);
      } else {
        const int id = new_item();
        {
          Inside inside(in_put_, c.me);
          if (quietly) {
            timed_out = weave::move_on_after(d, [&] { queue_.put(id); });
          } else {
            try {
              weave::fail_after(d, [&] { queue_.put(id); });
            } catch (const weave::TimeoutError&) {
              timed_out = true;
            }
          }
        }
        if (!timed_out) commit(c.me, id);
      }
    } catch (const weave::QueueShutDown&) {
      shut_down_seen(c.me);
      return;
    }
    check_timed(c.me, timed_out, deadline);
  }

  // Takes the lock (through std::unique_lock: with try_lock(), lock(), or lock() under
  // move_on_after) and holds it across a few operations.
  void op_lock(Ctx& c) {
    Fiber& me = c.me;
    std::unique_lock<weave::Lock> guard(lock_, std::defer_lock);
    const int how = me.rng.pick(10);
    if (how < 2) {
      // try_lock() never waits, and never takes a lock that unlock() handed to a woken waiter.
      if (!guard.try_lock()) {
        if (!lock_.locked()) error("try_lock() failed on a free lock");
        return;
      }
    } else {
      Inside inside(in_lock_, me);
      InLine line(lock_line_, me.id, lock_.locked());
      if (how < 5) {
        const Duration d = short_time(me);
        const TimePoint deadline = now() + d;
        expect_deadline(deadline);
        const bool timed_out = weave::move_on_after(d, [&] { guard.lock(); });
        check_timed(me, timed_out, deadline);
        if (timed_out) return;
      } else {
        guard.lock();
      }
      if (line.overtaken_by() != -1)
        error("fiber " + std::to_string(me.id) + " got the lock before fiber " +
              std::to_string(line.overtaken_by()) + ", which waited longer");
    }
    if (lock_holder_ != -1)
      error("fiber " + std::to_string(me.id) + " took the lock held by fiber " +
            std::to_string(lock_holder_));
    lock_holder_ = me.id;
    me.holds_lock = true;
    note(Ev::locked, me.id);
    // Declared after the guard, so destroyed before it: the model lets go of the lock before
    // unlock() can hand it to the next waiter.
    Defer release([&] {
      if (lock_holder_ != me.id)
        error("fiber " + std::to_string(me.id) + " releases a lock the model gave to " +
              std::to_string(lock_holder_));
      lock_holder_ = -1;
      me.holds_lock = false;
      note(Ev::unlocked, me.id);
    });
    for (int n = me.rng.pick(4); n > 0; --n) held_step(c, /*may_take_permit=*/true);
  }

  // Takes a permit (with try_acquire(), acquire(), or acquire() under move_on_after) and holds it
  // across a few operations.
  void op_semaphore(Ctx& c) {
    Fiber& me = c.me;
    const int how = me.rng.pick(10);
    if (how < 2) {
      if (!sem_.try_acquire()) {
        if (sem_.value() != 0) error("try_acquire() failed with permits available");
        return;
      }
    } else {
      Inside inside(in_sem_, me);
      InLine line(sem_line_, me.id, sem_.value() == 0);
      if (how < 5) {
        const Duration d = short_time(me);
        const TimePoint deadline = now() + d;
        expect_deadline(deadline);
        const bool timed_out = weave::move_on_after(d, [&] { sem_.acquire(); });
        check_timed(me, timed_out, deadline);
        if (timed_out) return;
      } else {
        sem_.acquire();
      }
      if (line.overtaken_by() != -1)
        error("fiber " + std::to_string(me.id) + " got a permit before fiber " +
              std::to_string(line.overtaken_by()) + ", which waited longer");
    }
    if (++sem_holders_ > cfg_.permits)
      error(std::to_string(sem_holders_) + " fibers hold one of " + std::to_string(cfg_.permits) +
            " permits");
    note(Ev::acquired, me.id, sem_holders_);
    Defer release([&] {
      --sem_holders_;
      note(Ev::released, me.id);
      if (sem_.value() >= cfg_.permits)
        error("the semaphore is at its initial value while fiber " + std::to_string(me.id) +
              " still holds a permit");
      else
        sem_.release();
    });
    for (int n = me.rng.pick(3); n > 0; --n) held_step(c, /*may_take_permit=*/false);
  }

  void op_wait(Ctx& c) {
    Fiber& me = c.me;
    const int e = me.rng.pick(2);
    const std::uint64_t sets_before = sets_[e];
    const bool was_set = events_[e].is_set();
    bool timed_out = false;
    {
      Inside inside(in_wait_[e], me);
      if (me.rng.chance(40)) {
        const Duration d = short_time(me);
        const TimePoint deadline = now() + d;
        expect_deadline(deadline);
        timed_out = weave::move_on_after(d, [&] { events_[e].wait(); });
        check_timed(me, timed_out, deadline);
      } else {
        events_[e].wait();
      }
    }
    if (!timed_out && !was_set && sets_[e] == sets_before)
      error("fiber " + std::to_string(me.id) + ": Event::wait returned but nobody set event " +
            std::to_string(e));
    if (!timed_out) note(Ev::waited, me.id, e);
  }

  void op_set(Ctx& c) {
    const int e = c.me.rng.pick(2);
    events_[e].set();
    ++sets_[e];
    note(Ev::set, c.me.id, e);
  }

  void op_clear(Ctx& c) {
    const int e = c.me.rng.pick(2);
    if (closing_) return;  // the closer's set() must stay, or waiters could block for ever
    events_[e].clear();
    note(Ev::clear, c.me.id, e);
  }

  // Cancels a random task: half the time one that is inside a waiting call (blocked, or woken
  // for an item, the lock or a permit and not yet run: the hand-off that a cancellation must not
  // lose), a third of the time after a short sleep, when the others are more likely blocked.
  void op_cancel(Ctx& c) {
    Rng& r = c.me.rng;
    if (r.chance(30)) op_sleep(c);
    Fiber* victim = &fibers_[static_cast<std::size_t>(r.pick(static_cast<int>(fibers_.size())))];
    if (r.chance(50)) {
      std::vector<Fiber*> waiting;
      for (Fiber& f : fibers_)
        if (f.waiting) waiting.push_back(&f);
      if (!waiting.empty())
        victim = waiting[static_cast<std::size_t>(r.pick(static_cast<int>(waiting.size())))];
    }
    Fiber& v = *victim;
    if (!v.task) return;  // an eager task still in its first run: its handle is not stored yet
    const bool was_done = v.task.done();
    const bool accepted = v.task.cancel();
    if (accepted == was_done)
      error("cancel() of fiber " + std::to_string(v.id) + " returned " +
            (accepted ? "true for a done task" : "false for a task not done"));
    if (accepted) {
      ++v.cancels_accepted;
      v.last_cancel = ++seq_;
      if (!v.started) v.cancelled_before_start = true;
    }
    note(Ev::cancel, c.me.id, v.id, accepted);
  }

  // A few operations in a shield: no cancellation from outside may reach them.
  void op_shield(Ctx& c) {
    note(Ev::shield, c.me.id);
    ++c.me.shields;
    Defer leave([&] { --c.me.shields; });
    weave::shield([&] {
      try {
        for (int n = 1 + c.me.rng.pick(3); n > 0; --n) {
          switch (c.me.rng.pick(4)) {
            case 0:
              op_sleep(c);
              break;
            case 1:
              op_yield(c);
              break;
            case 2:
              op_lock(c);
              break;
            default:
              op_timed_queue(c);
              break;
          }
          check_state(c);
        }
      } catch (const weave::Cancelled&) {
        error("fiber " + std::to_string(c.me.id) + " was cancelled inside a shield");
        throw;
      }
    });
  }

  void spawn_worker(bool eager) {
    if (!room_for_fiber()) return;
    Fiber& f = new_fiber(Role::worker);
    weave::SpawnOptions options;
    options.eager = eager;
    note(Ev::spawn, f.id, 0, eager);
    f.task = loop_->spawn(std::move(options), [this, &f] {
      begin(f);
      Ctx ctx{f, 0, nullptr, nullptr};
      run_script(ctx, 2 + f.rng.pick(12));
      f.returned = true;
      note(Ev::returned, f.id);
    });
  }

  // A child of group `g`: a script, then maybe a failure.
  void spawn_child(int depth, weave::TaskGroup& g, GroupBook& book, bool eager) {
    if (!room_for_fiber()) return;
    Fiber& f = new_fiber(Role::group_child);
    book.children.push_back(f.id);
    weave::SpawnOptions options;
    options.eager = eager;
    note(Ev::spawn, f.id, 1, eager);
    f.task = g.spawn(std::move(options), [this, &f, &g, &book, depth] {
      begin(f);
      Ctx ctx{f, depth, &g, &book};
      run_script(ctx, 1 + f.rng.pick(6));
      if (f.rng.chance(15)) {
        f.threw = true;
        ++book.failed;
        note(Ev::fail, f.id);
        throw ModelError(f.id);
      }
      f.returned = true;
      note(Ev::returned, f.id);
    });
  }

  void op_spawn(Ctx& c) {
    if (c.group != nullptr && c.me.rng.chance(50))
      spawn_child(c.depth, *c.group, *c.book, c.me.rng.chance(30));  // a sibling, into the group
    else
      spawn_worker(c.me.rng.chance(30));
  }

  void check_children_done(const GroupBook& book, const char* how) {
    for (int id : book.children)
      if (!fibers_[static_cast<std::size_t>(id)].task.done())
        error(std::string("task_group ") + how + " while its child fiber " + std::to_string(id) +
              " still runs");
  }

  void op_group(Ctx& c) {
    Fiber& me = c.me;
    GroupBook book;
    const int kids = 1 + me.rng.pick(3);
    note(Ev::group, me.id, kids);
    const int accepted_before = me.cancels_accepted;
    const bool pending_before = me.last_cancel > me.last_caught;
    try {
      weave::task_group([&](weave::TaskGroup& g) {
        for (int k = 0; k < kids; ++k) spawn_child(c.depth + 1, g, book, me.rng.chance(30));
        Ctx body{me, c.depth + 1, &g, &book};
        run_script(body, me.rng.pick(4));
      });
    } catch (const weave::ExceptionGroup& eg) {
      check_children_done(book, "threw");
      if (book.failed == 0 || eg.size() != static_cast<std::size_t>(book.failed) ||
          eg.count<ModelError>() != eg.size())
        error("task_group threw an ExceptionGroup of " + std::to_string(eg.size()) + " (" +
              std::to_string(eg.count<ModelError>()) + " ModelError) for " +
              std::to_string(book.failed) + " failed children");
      // Errors outrank a cancellation of the parent, which the group then requests again (or
      // was still pending): either way one is pending now, and must be delivered later.
      if (me.cancel_in_flight || me.last_cancel > me.last_caught) {
        me.cancel_in_flight = false;
        ++me.cancels_accepted;
        me.last_cancel = ++seq_;
      }
      note(Ev::group_end, me.id, 1, book.failed);
      return;
    } catch (const weave::Cancelled& e) {
      // A Task::cancel() the body did not receive (its script would have counted it) was taken
      // by the group at its final wait, some time before it rethrew it here; if more than one
      // request was around, a later one may still be pending.
      if (e.scope() == nullptr && !me.cancel_in_flight) {
        ++me.cancels_caught;
        me.last_caught = ++seq_;
        me.cancel_in_flight = true;  // counted: the scripts it passes through must not recount
        me.maybe_pending = (pending_before ? 1 : 0) + me.cancels_accepted - accepted_before >= 2;
      }
      check_children_done(book, "was cancelled");
      if (book.failed > 0)
        error("task_group threw Cancelled although " + std::to_string(book.failed) +
              " children failed");
      note(Ev::group_end, me.id, 2);
      throw;
    }
    check_children_done(book, "returned");
    if (book.failed > 0)
      error("task_group returned although " + std::to_string(book.failed) + " children failed");
    note(Ev::group_end, me.id, 0);
  }

  static int value_of(const Fiber& f) { return f.id * 10 + 7; }

  template <class Results>
  void check_results(const std::vector<weave::Task<int>>& tasks, const std::vector<Fiber*>& recs,
                     const Results& results) {
    if (results.size() != tasks.size()) {
      error("gather returned " + std::to_string(results.size()) + " results for " +
            std::to_string(tasks.size()) + " tasks");
      return;
    }
    for (std::size_t i = 0; i < tasks.size(); ++i) {
      const Fiber& f = *recs[i];
      const auto& r = results[i];
      bool ok = tasks[i].done();
      if (r.has_value())
        ok = ok && *r == value_of(f) && f.returned && !f.threw;
      else if (r.failed())
        ok = ok && f.threw && !tasks[i].cancelled();
      else
        ok = ok && r.cancelled() && tasks[i].cancelled();
      if (!ok) error("gather(return_exceptions): wrong outcome for fiber " + std::to_string(f.id));
    }
  }

  // Spawns 1 to 3 tasks and gathers them: plainly, with return_exceptions, or under a timeout.
  void op_gather(Ctx& c) {
    Fiber& me = c.me;
    std::vector<weave::Task<int>> tasks;
    std::vector<Fiber*> recs;
    for (int k = 1 + me.rng.pick(3); k > 0 && room_for_fiber(); --k) {
      Fiber& f = new_fiber(Role::gather_child);
      recs.push_back(&f);
      weave::SpawnOptions options;
      options.eager = me.rng.chance(30);
      note(Ev::spawn, f.id, 2, options.eager);
      const int depth = c.depth + 1;
      weave::Task<int> t = loop_->spawn(std::move(options), [this, &f, depth] {
        begin(f);
        Ctx ctx{f, depth, nullptr, nullptr};
        run_script(ctx, 1 + f.rng.pick(6));
        if (f.rng.chance(15)) {
          f.threw = true;
          note(Ev::fail, f.id);
          throw ModelError(f.id);
        }
        f.returned = true;
        note(Ev::returned, f.id);
        return value_of(f);
      });
      f.task = t;
      tasks.push_back(std::move(t));
    }
    if (tasks.empty()) return;
    const int mode = me.rng.pick(3);
    note(Ev::gather, me.id, static_cast<long long>(tasks.size()), mode);
    Inside inside(in_gather_, me);
    if (mode == 0) {
      try {
        std::vector<int> values = weave::gather(tasks);
        for (std::size_t i = 0; i < tasks.size(); ++i)
          if (!tasks[i].done() || values[i] != value_of(*recs[i]) || recs[i]->threw)
            error("gather: wrong value for fiber " + std::to_string(recs[i]->id));
      } catch (const ModelError&) {
        bool any = false;
        for (std::size_t i = 0; i < tasks.size(); ++i)
          any = any || (tasks[i].done() && recs[i]->threw);
        if (!any) error("gather threw ModelError but no gathered task failed");
      } catch (const weave::Cancelled&) {
        // A cancelled gathered task makes gather throw Cancelled too (as Task::get() would):
        // then it cannot be told from the caller's own cancellation.
        for (std::size_t i = 0; i < tasks.size(); ++i)
          if (tasks[i].done() && tasks[i].cancelled()) me.unsure = true;
        note(Ev::gather_end, me.id, 2);
        throw;
      }
    } else if (mode == 1) {
      check_results(tasks, recs, weave::gather(weave::return_exceptions, tasks));
    } else {
      const Duration d = std::chrono::milliseconds(me.rng.pick(6));
      const TimePoint deadline = now() + d;
      expect_deadline(deadline);
      auto results =
          weave::move_on_after(d, [&] { return weave::gather(weave::return_exceptions, tasks); });
      check_timed(me, !results, deadline);
      if (results) check_results(tasks, recs, *results);
    }
    note(Ev::gather_end, me.id, mode);
  }

  // A sub-script under a deadline.
  void op_block(Ctx& c) {
    Fiber& me = c.me;
    const bool quietly = me.rng.chance(60);
    const Duration d = std::chrono::milliseconds(1 + me.rng.pick(6));
    const TimePoint deadline = now() + d;
    expect_deadline(deadline);
    const int ops = 1 + me.rng.pick(3);
    note(Ev::block, me.id, ops, quietly);
    Ctx inner{me, c.depth + 1, c.group, c.book};
    bool timed_out = false;
    if (quietly) {
      timed_out = weave::move_on_after(d, [&] { run_script(inner, ops); });
    } else {
      try {
        weave::fail_after(d, [&] { run_script(inner, ops); });
      } catch (const weave::TimeoutError&) {
        timed_out = true;
      }
    }
    // A shield or a task group inside may carry on past the deadline; never before it.
    if (timed_out && now() < deadline)
      error("a block timed out at " + std::to_string(ms(now())) + "ms, before its deadline " +
            std::to_string(ms(deadline)) + "ms");
    if (timed_out) note(Ev::timed_out, me.id, 1);
  }

  void closer() {
    const Duration d = std::chrono::milliseconds(cfg_.close_at_ms);
    expect_deadline(now() + d);
    weave::this_fiber::sleep_for(d);
    closing_ = true;
    note(Ev::close, -1, cfg_.immediate);
    for (int e = 0; e < 2; ++e) {
      events_[e].set();
      ++sets_[e];
    }
    queue_.shutdown(cfg_.immediate);
    if (cfg_.immediate) {
      for (Where& w : where_)
        if (w == Where::in_queue) w = Where::dropped;
      in_queue_ = 0;
    }
  }

  void final_checks();
  void check_outcome(Fiber& f);

  // ---- State --------------------------------------------------------------------------------

  std::uint32_t seed_;
  bool verbose_;
  Config cfg_;
  // The primitives outlive the loop (declared in run()), as they must.
  weave::Queue<int> queue_;
  weave::Lock lock_;
  weave::BoundedSemaphore sem_;
  weave::Event events_[2];

  weave::Loop* loop_ = nullptr;
  std::string last_error_;
  std::deque<Fiber> fibers_;  // a deque: fibers refer to their record while more are added
  std::vector<Where> where_;  // by item id
  int in_queue_ = 0;
  int lock_holder_ = -1;                   // the fiber the model believes holds the lock
  std::vector<int> lock_line_, sem_line_;  // fibers waiting in lock() / acquire(), in order
  int sem_holders_ = 0;
  std::uint64_t sets_[2] = {0, 0};
  bool closing_ = false;
  std::uint64_t seq_ = 0;  // orders cancel() calls and deliveries
  TimePoint max_deadline_{};
  // Fibers inside a waiting call (blocked in it when the loop is idle).
  int in_get_ = 0, in_put_ = 0, in_lock_ = 0, in_sem_ = 0, in_gather_ = 0;
  int in_wait_[2] = {0, 0};
};

void Model::run_script(Ctx& c, int ops) {
  Fiber& me = c.me;
  for (int i = 0; i < ops; ++i) {
    try {
      step(c);
    } catch (const weave::Cancelled& e) {
      // A scope's cancellation (a deadline, a failing group's body) is level-triggered and
      // belongs to that scope's edge: never swallowed here.
      if (e.scope() != nullptr) throw;
      if (me.cancel_in_flight) {
        me.cancel_in_flight = false;  // counted by an inner script already
      } else {
        ++me.cancels_caught;
        me.last_caught = ++seq_;
        me.maybe_pending = false;  // a delivery takes every request made before it
      }
      // Half the time the fiber swallows it and goes on (allowed for Task::cancel(), as in
      // asyncio: the task then need not end cancelled).
      const bool go_on = me.rng.chance(50);
      note(Ev::caught, me.id, go_on);
      if (!go_on) {
        me.cancel_in_flight = true;
        throw;
      }
    }
    check_state(c);
  }
}

void Model::step(Ctx& c) {
  enum Op {
    kYield,
    kSleep,
    kPut,
    kPutNowait,
    kGet,
    kGetNowait,
    kTimedQueue,
    kLock,
    kSemaphore,
    kWait,
    kSet,
    kClear,
    kCancel,
    kShield,
    kGroup,
    kGather,
    kBlock,
    kSpawn,
    kOps
  };
  static constexpr int kWeights[kOps] = {10, 10, 8, 5, 8, 5, 8, 8, 8, 6, 4, 2, 6, 4, 3, 3, 3, 4};
  static constexpr int kTotal = [] {
    int t = 0;
    for (int w : kWeights) t += w;
    return t;
  }();
  int r = c.me.rng.pick(kTotal);
  int op = 0;
  while (r >= kWeights[op]) r -= kWeights[op++];
  const bool may_nest = c.depth < 2;
  switch (op) {
    case kYield:
      op_yield(c);
      break;
    case kSleep:
      op_sleep(c);
      break;
    case kPut:
      op_put(c);
      break;
    case kPutNowait:
      op_put_nowait(c);
      break;
    case kGet:
      op_get(c);
      break;
    case kGetNowait:
      op_get_nowait(c);
      break;
    case kTimedQueue:
      op_timed_queue(c);
      break;
    case kLock:
      op_lock(c);
      break;
    case kSemaphore:
      op_semaphore(c);
      break;
    case kWait:
      op_wait(c);
      break;
    case kSet:
      op_set(c);
      break;
    case kClear:
      op_clear(c);
      break;
    case kCancel:
      op_cancel(c);
      break;
    case kShield:
      op_shield(c);
      break;
    case kGroup:
      may_nest ? op_group(c) : op_yield(c);
      break;
    case kGather:
      may_nest ? op_gather(c) : op_yield(c);
      break;
    case kBlock:
      may_nest ? op_block(c) : op_yield(c);
      break;
    default:
      op_spawn(c);
      break;
  }
}

// What a fiber may do while it holds the lock or a permit: anything that ends by itself (no
// untimed wait on the queue or an event, no task group). Permits are taken only under the lock,
// never the lock under a permit, so holders never wait for each other in a cycle.
void Model::held_step(Ctx& c, bool may_take_permit) {
  switch (c.me.rng.pick(may_take_permit ? 8 : 7)) {
    case 0:
      op_yield(c);
      break;
    case 1:
      op_sleep(c);
      break;
    case 2:
      op_put_nowait(c);
      break;
    case 3:
      op_get_nowait(c);
      break;
    case 4:
      op_timed_queue(c);
      break;
    case 5:
      op_set(c);
      break;
    case 6:
      op_cancel(c);
      break;
    default:
      op_semaphore(c);
      break;
  }
  check_state(c);
}

void Model::check_outcome(Fiber& f) {
  const std::string who = "fiber " + std::to_string(f.id) + ": ";
  if (!f.task.done()) {
    error(who + "not done at the end");
    return;
  }
  const bool cancelled = f.task.cancelled();
  std::exception_ptr failure = cancelled ? nullptr : f.task.exception();  // marks it retrieved
  // Only the model cancels workers and gathered tasks; a group also cancels its children.
  const bool model_only = f.role != Role::group_child && !f.unsure;
  if (model_only && f.cancels_caught > f.cancels_accepted)
    error(who + std::to_string(f.cancels_caught) + " cancellations delivered for " +
          std::to_string(f.cancels_accepted) + " requested");
  if (!f.started) {
    if (!cancelled) error(who + "its function never ran, yet it was not cancelled");
    if (model_only && f.cancels_accepted == 0) error(who + "never ran and nobody cancelled it");
    return;
  }
  if (cancelled) {
    if (model_only && f.cancels_accepted == 0) error(who + "cancelled, but nobody cancelled it");
    if (model_only && f.returned && f.last_cancel < f.last_caught && !f.maybe_pending)
      error(who + "its function returned with no cancellation pending, yet it ended cancelled");
  } else if (failure) {
    try {
      std::rethrow_exception(failure);
    } catch (const ModelError&) {
      if (!f.threw) error(who + "failed with a ModelError it did not throw");
    } catch (const std::exception& e) {
      error(who + "failed with an unexpected exception: " + e.what());
    }
  } else {
    if (!f.returned) error(who + "ended with a value although its function did not return");
    if (f.last_cancel > f.last_caught)
      error(who + "ended with a value although a cancel() accepted at step " +
            std::to_string(f.last_cancel) + " was never delivered");
  }
}

void Model::final_checks() {
  // What is still in the queue (a normal shutdown keeps the items for get_nowait()).
  for (;;) {
    try {
      const int id = queue_.get_nowait();
      if (id < 0 || id >= static_cast<int>(where_.size()) || where_[id] != Where::in_queue) {
        error("drained item " + std::to_string(id) + ", which was not in the queue");
      } else {
        where_[id] = Where::remaining;
        --in_queue_;
      }
    } catch (const weave::QueueShutDown&) {
      break;
    } catch (const weave::QueueEmpty&) {
      error("get_nowait threw QueueEmpty on a shut-down queue");
      break;
    }
  }
  for (std::size_t id = 0; id < where_.size(); ++id)
    if (where_[id] == Where::in_queue)
      error("item " + std::to_string(id) + " was put and is nowhere: lost");
  if (lock_.locked() || lock_holder_ != -1) error("the lock is still held at the end");
  if (sem_.value() != cfg_.permits || sem_holders_ != 0)
    error("the semaphore ends at " + std::to_string(sem_.value()) + " of " +
          std::to_string(cfg_.permits) + " permits");
  if (now() > max_deadline_)
    error("the run ended at " + std::to_string(ms(now())) + "ms, after the last deadline set (" +
          std::to_string(ms(max_deadline_)) + "ms)");
  for (Fiber& f : fibers_) check_outcome(f);
}

void Model::run() {
  IdleCheckingClock clock;
  weave::Loop::Options options;
  options.clock = &clock;
  options.stack_size = 128 * 1024;
  weave::Loop loop(options);
  loop_ = &loop;
  loop.set_exception_handler(
      [this](const weave::ErrorContext& c) { error("exception handler: " + c.message); });

  // Everything must end once the closer has run; a far-away timer stops the loop if some fiber is
  // left blocked. It must not keep a finished program's loop running (and jump the time) either.
  const TimePoint watchdog_at = now() + 24h;
  weave::Handle watchdog = loop.call_at(watchdog_at, [&loop] { loop.stop(); });
  clock.on_idle = [&](TimePoint deadline) {
    check_idle();
    if (loop.live_fibers() == 0 && deadline == watchdog_at) {
      watchdog.cancel();  // the program is over: the loop may end here, without a jump
      return false;
    }
    return true;
  };

  for (int i = 0; i < cfg_.workers; ++i) spawn_worker(false);
  loop.spawn([this] { closer(); });
  loop.run();
  watchdog.cancel();
  if (loop.live_fibers() != 0) {
    error("fibers left blocked at the end:\n" + loop.dump_tasks());
    clock.on_idle = nullptr;
    loop.close();  // cancels them while the model they use is still alive
  } else {
    final_checks();
  }
  // The handles go while the loop (and its exception handler) is still there.
  for (Fiber& f : fibers_) f.task = weave::AnyTask();
  loop_ = nullptr;
}

struct Outcome {
  std::vector<std::string> errors;
  std::uint64_t trace;
  std::size_t events;
};

// ---- Crash reports ------------------------------------------------------------------------
//
// A library bug may crash the program (a use after free, std::terminate from a guard's unlock())
// instead of breaking an invariant; the seed it happened with is then printed on the way down.

std::atomic<std::int64_t> g_running_seed{-1};

// Async-signal-safe: write(2) of a hand-formatted number.
void report_crash_seed() {
  const std::int64_t seed = g_running_seed.load();
  if (seed < 0) return;
  char digits[24];
  int n = 0;
  for (std::uint64_t v = static_cast<std::uint64_t>(seed); n == 0 || v > 0; v /= 10)
    digits[n++] = static_cast<char>('0' + v % 10);
  char line[160];
  int len = 0;
  auto add = [&](const char* text, int count) {
    for (int i = 0; i < count && len < static_cast<int>(sizeof line); ++i) line[len++] = text[i];
  };
  auto add_seed = [&] {
    for (int i = n - 1; i >= 0; --i) add(&digits[i], 1);
  };
  const char head[] = "\nmodel_test: crashed while running seed ";
  const char replay[] = "; replay: WEAVE_MODEL_SEED=";
  const char tail[] = " ./model_test --gtest_filter='*OneSeed*'\n";
  add(head, sizeof head - 1);
  add_seed();
  add(replay, sizeof replay - 1);
  add_seed();
  add(tail, sizeof tail - 1);
  [[maybe_unused]] const ssize_t ignored = ::write(2, line, static_cast<std::size_t>(len));
}

#ifndef WEAVE_MODEL_SANITIZED
extern "C" void on_fatal_signal(int sig) {
  report_crash_seed();
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}
#endif

// Installed once, before any loop: weave's own SIGSEGV handler (stack overflows) passes other
// faults on to the handler installed before it, this one. Under the sanitizers, their death
// callback instead, so that their reports stay as they are.
void install_crash_report() {
  static const bool installed = [] {
#ifdef WEAVE_MODEL_SANITIZED
    __sanitizer_set_death_callback(&report_crash_seed);
#else
    for (int sig : {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL}) std::signal(sig, &on_fatal_signal);
#endif
    return true;
  }();
  (void)installed;
}

Outcome run_seed(std::uint32_t seed, bool verbose = false) {
  install_crash_report();
  g_running_seed = seed;
  Model m(seed, verbose);
  m.run();
  g_running_seed = -1;
  return {m.errors, m.trace, m.events};
}

std::string describe(std::uint32_t seed, const std::vector<std::string>& errors) {
  const Config cfg = config_for(seed);
  std::ostringstream out;
  out << "seed " << seed << " (" << cfg.workers << " workers, up to " << cfg.max_fibers
      << " fibers, queue maxsize " << cfg.maxsize << ", " << cfg.permits << " permits, closing at "
      << cfg.close_at_ms << "ms" << (cfg.immediate ? " immediately" : "") << "):";
  for (const auto& e : errors) out << "\n  " << e;
  out << "\n  replay: WEAVE_MODEL_SEED=" << seed
      << " ./model_test --gtest_filter='*OneSeed*' (WEAVE_MODEL_VERBOSE=1 for the event log)";
  return out.str();
}

// Seeds per block: several thousand in all in a plain build, fewer under the sanitizers, which
// make each fiber switch and allocation much dearer.
#ifdef WEAVE_MODEL_SANITIZED
constexpr std::uint32_t kDefaultSeedsPerBlock = 500;
#else
constexpr std::uint32_t kDefaultSeedsPerBlock = 1500;
#endif
constexpr std::uint32_t kBlocks = 4;

std::uint32_t seeds_per_block() {
  if (const char* s = std::getenv("WEAVE_MODEL_SEEDS"))
    return static_cast<std::uint32_t>(std::strtoul(s, nullptr, 10));
  return kDefaultSeedsPerBlock;
}

// Each block is its own test case, so that ctest runs them in parallel.
class CrossPrimitiveModel : public ::testing::TestWithParam<std::uint32_t> {};

TEST_P(CrossPrimitiveModel, RandomProgramsKeepEveryInvariant) {
  const std::uint32_t n = seeds_per_block();
  const std::uint32_t first = GetParam() * n;
  int failures = 0;
  for (std::uint32_t seed = first; seed < first + n && failures < 5; ++seed) {
    Outcome o = run_seed(seed);
    if (!o.errors.empty()) {
      ++failures;
      ADD_FAILURE() << describe(seed, o.errors);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Block, CrossPrimitiveModel, ::testing::Range(0u, kBlocks));

TEST(CrossPrimitiveModelDeterminism, TheSameSeedGivesTheSameTraceTwice) {
  for (std::uint32_t seed = 0; seed < 4000; seed += 97) {
    Outcome first = run_seed(seed);
    Outcome second = run_seed(seed);
    EXPECT_EQ(first.trace, second.trace) << "seed " << seed;
    EXPECT_EQ(first.events, second.events) << "seed " << seed;
    EXPECT_EQ(first.errors, second.errors) << "seed " << seed;
  }
}

TEST(CrossPrimitiveModelDeterminism, OneSeedFromTheEnvironment) {
  const char* s = std::getenv("WEAVE_MODEL_SEED");
  if (!s) GTEST_SKIP() << "set WEAVE_MODEL_SEED=n to replay one seed";
  const auto seed = static_cast<std::uint32_t>(std::strtoul(s, nullptr, 10));
  const char* v = std::getenv("WEAVE_MODEL_VERBOSE");
  const bool verbose = v != nullptr && std::string(v) == "1";
  if (verbose) std::cout << describe(seed, {}) << "\n";
  Outcome o = run_seed(seed, verbose);
  EXPECT_TRUE(o.errors.empty()) << describe(seed, o.errors);
  std::cout << "seed " << seed << ": " << o.events << " events, trace " << std::hex << o.trace
            << std::dec << "\n";
}

}  // namespace
