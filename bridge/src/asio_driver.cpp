// AsioDriver: the loop's turns as Asio handlers.

#include <poll.h>

#include <boost/asio/error.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <utility>

#include "weave/asio/driver.hpp"

namespace weave {

// Everything the Asio handlers touch lives here, reference-counted, so that a handler that runs
// after the driver went (Asio calls cancelled handlers later, with operation_aborted) finds a
// detached core instead of freed memory.
struct AsioDriver::Core : std::enable_shared_from_this<AsioDriver::Core> {
  Core(boost::asio::io_context& io, Loop& loop) : io(io), loop(loop), fd(io), timer(io) {}
  ~Core() {
    // The fd is the loop's: give it back instead of letting the descriptor close it.
    if (fd.is_open()) fd.release();
  }

  // Watching the loop's fd. Asio registers descriptors edge-triggered, so readiness that comes
  // while no wait is queued is not reported again: the wait is therefore re-queued *before*
  // the turn polls the loop's epoll set. Every event is then either consumed by that poll or
  // comes after the new wait was queued, which reports it.
  void wait_fd() {
    fd.async_wait(boost::asio::posix::descriptor_base::wait_read,
                  [self = shared_from_this()](const boost::system::error_code& ec) {
                    if (ec || self->detached) return;  // cancelled by the destructor
                    self->wait_fd();
                    self->turn(true);
                    // The loop takes at most 64 events per poll; if more wait, edge-triggering
                    // will not say so again.
                    if (self->fd_readable()) self->post_turn(true);
                  });
  }

  bool fd_readable() const noexcept {
    if (loop.is_closed()) return false;
    pollfd p{loop.native_handle(), POLLIN, 0};
    return ::poll(&p, 1, 0) > 0;
  }

  void post_turn(bool check_io) {
    turn_check_io = turn_check_io || check_io;
    turn_wanted = true;
    if (turn_posted) return;
    turn_posted = true;
    boost::asio::post(io, [self = shared_from_this()] {
      self->turn_posted = false;
      const bool check = std::exchange(self->turn_check_io, false);
      // A turn that ran since the request (run_turn_now from a handler: the wake that asked for
      // this one came just before it) has done its work; one asked for later set it again.
      if (!check && !self->turn_wanted) return;
      self->turn(check);
    });
  }

  void turn(bool check_io) {
    if (detached || loop.is_closed()) return;
    if (loop.is_running()) {
      // Asio handlers run from inside a turn (a fiber or callback ran io.poll()): this turn
      // cannot nest; the outer one looks again when it ends.
      missed_io = missed_io || check_io;
      return;
    }
    turn_wanted = false;
    after_turn(loop.run_nowait(check_io));
  }

  // A task woken by a use_fiber handler, run at once if the loop is idle: the same as waking it
  // and running a turn (turn(false)), minus the turn's machinery (see LoopAccess::run_woken).
  bool resume(detail::TaskBase* t) {
    if (detached) return false;
    bool stopped = false;
    if (!detail::LoopAccess::run_woken(loop, t, stopped)) return false;
    after_turn(!stopped);
    return true;
  }

  void after_turn(bool keep_going) {
    if (!keep_going) stop_requested = true;
    if (std::exchange(missed_io, false)) post_turn(true);
    schedule();
    // A run of the driver (run, run_until_complete) reached its goal: end io.run() there.
    if (goal && !stopped_io && (stop_requested || goal(goal_arg))) {
      stopped_io = true;
      io.stop();
    }
  }

  // After a turn: run the next one soon if work is ready, else wake up for the next timer (the
  // fd wait covers posts and I/O).
  void schedule() {
    if (detached || loop.is_closed()) return;
    const std::optional<Duration> wait = loop.poll_timeout();
    if (!wait) return;
    if (*wait <= Duration::zero()) {
      post_turn(false);
      return;
    }
    arm_timer(*wait);
  }

  void arm_timer(Duration wait) {
    const auto due = std::chrono::steady_clock::now() + wait;
    // An armed wait that comes first is kept: it wakes a turn that re-arms for what is left.
    if (timer_armed && timer_due <= due) return;
    timer_armed = true;
    timer_due = due;
    const std::uint64_t generation = ++timer_generation;
    timer.expires_at(due);  // cancels the earlier wait, whose handler is then ignored
    timer.async_wait([self = shared_from_this(), generation](const boost::system::error_code& ec) {
      if (ec || self->detached || generation != self->timer_generation) return;
      self->timer_armed = false;
      self->turn(false);
    });
  }

  boost::asio::io_context& io;
  Loop& loop;
  boost::asio::posix::stream_descriptor fd;
  boost::asio::steady_timer timer;
  std::chrono::steady_clock::time_point timer_due{};
  std::uint64_t timer_generation = 0;
  bool timer_armed = false;
  bool turn_posted = false;
  bool turn_check_io = false;
  bool turn_wanted = false;  // a turn was asked for since the last one began
  bool missed_io = false;
  bool stop_requested = false;
  bool detached = false;
  // While the driver runs the io_context (drive): its goal, and whether it stopped io.run().
  bool (*goal)(void*) = nullptr;
  void* goal_arg = nullptr;
  bool stopped_io = false;
};

AsioDriver::AsioDriver(boost::asio::io_context& io, Loop& loop)
    : bridge::Embedder(loop), core_(std::make_shared<Core>(io, loop)) {
  if (loop.is_closed()) throw std::logic_error("weave::AsioDriver: the loop is closed");
  core_->fd.assign(loop.native_handle());
  core_->wait_fd();
  // Work that is ready already (fibers spawned before the driver) gets its first turn.
  core_->post_turn(true);
}

AsioDriver::~AsioDriver() { detach(); }

void AsioDriver::detach() noexcept {
  core_->detached = true;  // from now on the handlers that are still queued do nothing
  try {
    core_->timer.cancel();
    if (core_->fd.is_open()) core_->fd.release();  // cancels the wait; the fd stays open
  } catch (...) {
    // Only fails if the reactor does; the handlers see `detached` anyway.
  }
}

void AsioDriver::close_loop() {
  if (core_->detached) return;
  Loop& l = loop();
  for (AnyTask& t : l.all_tasks()) t.cancel();
  drive([](void* p) { return static_cast<Loop*>(p)->live_fibers() == 0; }, &l);
  // The fd leaves the io_context's reactor before the loop closes it (a closed fd's number may
  // be reused at once).
  detach();
  l.close();
}

void AsioDriver::request_turn() noexcept {
  try {
    core_->post_turn(false);
  } catch (...) {
    // Out of memory for a posted handler: the next timer or post still runs a turn.
  }
}

void AsioDriver::run_turn_now() noexcept {
  try {
    core_->turn(false);
  } catch (...) {
    // run_nowait throws only on misuse (another loop running on this thread); fall back to a
    // posted turn, which reports nothing either but keeps the fiber from being stranded.
    request_turn();
  }
}

bool AsioDriver::resume_now(detail::TaskBase* t) noexcept {
  try {
    return core_->resume(t);
  } catch (...) {
    // Only post_turn can throw (out of memory for the handler), after the task ran: the next
    // timer or post still runs a turn.
    return true;
  }
}

boost::asio::io_context& AsioDriver::context() const noexcept { return core_->io; }

void AsioDriver::drive(bool (*done)(void*), void* arg) {
  Core& c = *core_;
  if (done(arg)) return;
  c.stop_requested = false;
  c.stopped_io = false;
  c.goal = done;
  c.goal_arg = arg;
  struct Reset {
    Core& c;
    ~Reset() {
      c.goal = nullptr;
      // Only a stop of our own is undone; one from the application stays, as it asked.
      if (c.stopped_io) c.io.restart();
      c.stopped_io = false;
    }
  } reset{c};
  c.post_turn(true);
  // io.run() rather than a loop of run_one(): Asio keeps its per-thread state (the recycled
  // handler memory, the private queue) for the whole run, not one handler. A turn that reaches
  // the goal stops the io_context; an io.stop() from the application ends the run as well.
  c.io.run();
}

void AsioDriver::run() {
  drive([](void* l) { return !static_cast<Loop*>(l)->alive(); }, &loop());
}

}  // namespace weave
