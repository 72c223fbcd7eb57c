// The reactor's per-fd state behind weave::IoWatch.

#include "weave/io.hpp"

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "internal.hpp"
#include "weave/detail/intrusive_list.hpp"
#include "weave/detail/runnable.hpp"
#include "weave/detail/task_base.hpp"

namespace weave {
namespace detail {

namespace {

// Fiber mode: registered once, edge-triggered, for both directions; readiness is remembered.
constexpr std::uint32_t kFiberEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
constexpr std::uint32_t kReadEvents = EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR;
constexpr std::uint32_t kWriteEvents = EPOLLOUT | EPOLLHUP | EPOLLERR;

struct Waiter : ListNode {
  explicit Waiter(TaskBase* t) noexcept : task(t) {}
  TaskBase* task;
};

}  // namespace

// Heap-allocated once per registration, so that an IoWatch can move while epoll points at the
// state, and reference-counted (loop-affine, no atomics): the owner holds one reference, each
// parked fiber and each queued callback run one more, so a close() followed by the owner's
// destruction leaves nothing dangling for the fibers it woke.
struct IoState : IoSource {
  // A callback run of one direction, queued on the loop's ready queue.
  struct Dispatch : Runnable {
    IoState* state = nullptr;
    bool queued = false;
  };

  Loop* loop = nullptr;
  int fd = -1;
  int refs = 1;
  bool readable = false;
  bool writable = false;
  // The peer hung up (or the fd has an error): reads can no longer say EAGAIN (they return the
  // bytes left, then 0 or the error), and no new edge will come, so readiness to read stays.
  bool read_hangup = false;
  bool closed = false;
  bool registered = false;
  bool callback_mode = false;
  std::uint32_t registered_events = 0;
  IntrusiveList read_waiters;
  IntrusiveList write_waiters;
  std::function<void()> read_callback;
  std::function<void()> write_callback;
  // Whether a callback is set: the slot itself is empty while its callback runs (run_dispatch).
  bool has_read_callback = false;
  bool has_write_callback = false;
  // Bumped whenever a callback is set or dropped, so that run_dispatch can tell whether the
  // callback it ran was replaced meanwhile.
  std::uint32_t read_generation = 0;
  std::uint32_t write_generation = 0;
  Dispatch read_dispatch;
  Dispatch write_dispatch;

  IoState(Loop& l, int f) : loop(&l), fd(f) {
    on_io = &IoState::handle_events;
    read_dispatch.state = this;
    read_dispatch.invoke = &IoState::run_read;
    write_dispatch.state = this;
    write_dispatch.invoke = &IoState::run_write;
  }

  void unref() noexcept {
    if (--refs == 0) delete this;
  }

  static void wake_all(IntrusiveList& waiters) noexcept {
    while (ListNode* n = waiters.pop_front()) {
      TaskBase* t = static_cast<Waiter*>(n)->task;
      LoopAccess::wake(*t->loop, t);
    }
  }

  void queue(Dispatch& d) noexcept {
    if (d.queued) return;
    d.queued = true;
    ++refs;
    LoopAccess::schedule(*loop, &d);
  }

  static void handle_events(IoSource* src, std::uint32_t events) noexcept {
    auto* s = static_cast<IoState*>(src);
    if (s->callback_mode) {
      if ((events & kReadEvents) && s->has_read_callback) s->queue(s->read_dispatch);
      if ((events & kWriteEvents) && s->has_write_callback) s->queue(s->write_dispatch);
      return;
    }
    if (events & kReadEvents) {
      s->readable = true;
      if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) s->read_hangup = true;
      wake_all(s->read_waiters);
    }
    if (events & kWriteEvents) {
      s->writable = true;
      wake_all(s->write_waiters);
    }
  }

  static void run_dispatch(Runnable* r, bool run, bool read) noexcept {
    auto* d = static_cast<Dispatch*>(r);
    IoState* s = d->state;
    d->queued = false;
    if (run && !s->closed) {
      // The callback runs from a local, since it may replace itself or close the watch while
      // it runs; it is moved out and back, not copied (a copy cost two indirect calls per
      // event, ~14% of the Protocol API's user-space instructions on the echo benchmark).
      std::function<void()>& slot = read ? s->read_callback : s->write_callback;
      const std::uint32_t& generation = read ? s->read_generation : s->write_generation;
      const std::uint32_t before = generation;
      std::function<void()> cb = std::move(slot);
      if (cb) {
        try {
          cb();
        } catch (...) {
          s->loop->call_exception_handler(
              {read ? "exception in an fd's read callback" : "exception in an fd's write callback",
               std::current_exception(),
               {}});
        }
        if (generation == before && !s->closed) slot = std::move(cb);
      }
    }
    s->unref();
  }
  static void run_read(Runnable* r, bool run) { run_dispatch(r, run, true); }
  static void run_write(Runnable* r, bool run) { run_dispatch(r, run, false); }

  // Callback mode registers level-triggered, and only while a callback is set (an fd with no
  // callback would otherwise report a hang-up on every turn).
  void update_callback_registration() {
    std::uint32_t want = 0;
    if (has_read_callback) want |= EPOLLIN | EPOLLRDHUP;
    if (has_write_callback) want |= EPOLLOUT;
    if (want == registered_events && registered) return;
    if (want == 0) {
      if (registered) {
        LoopAccess::io_remove(*loop, fd);
        LoopAccess::io_keep_running(*loop, -1);
        registered = false;
      }
    } else if (!registered) {
      LoopAccess::io_add(*loop, fd, want, this);
      LoopAccess::io_keep_running(*loop, +1);
      registered = true;
    } else {
      LoopAccess::io_modify(*loop, fd, want, this);
    }
    registered_events = want;
  }

  void unregister() noexcept {
    if (!registered) return;
    registered = false;
    if (!loop_alive(loop)) return;
    LoopAccess::io_remove(*loop, fd);
    if (callback_mode) LoopAccess::io_keep_running(*loop, -1);
  }

  // Shared by close() and release(): wakes the waiters, drops the callbacks, unregisters.
  int shut() noexcept {
    if (closed) return -1;
    closed = true;
    readable = writable = true;  // nothing will be reported any more; nobody must wait
    wake_all(read_waiters);
    wake_all(write_waiters);
    unregister();
    // A running callback may be what closes the watch: it runs from a local (run_dispatch).
    read_callback = nullptr;
    write_callback = nullptr;
    has_read_callback = has_write_callback = false;
    ++read_generation;
    ++write_generation;
    int f = fd;
    fd = -1;
    return f;
  }

  void wait(IntrusiveList& waiters, bool& ready, const char* what, SourceLocation where) {
    TaskBase* self = LoopAccess::require_fiber(what);
    if (callback_mode)
      throw std::logic_error(std::string(what) + ": the watch is in callback mode");
    if (closed) throw_closed();
    if (ready) return;
    LoopAccess::checkpoint(self);
    Waiter w(self);
    waiters.push_back(&w);
    ++refs;  // the owner may go while this fiber waits to run after close()
    struct Unref {
      IoState* s;
      ~Unref() { s->unref(); }
    };
    bool woken = LoopAccess::park(self, where);
    if (!woken) {
      if (w.linked()) waiters.erase(&w);
      Unref u{this};
      LoopAccess::throw_cancelled(self);
    }
    bool was_closed = closed;
    unref();  // `this` may be gone from here on
    if (was_closed) throw_closed();
  }

  [[noreturn]] static void throw_closed() {
    throw std::system_error(EBADF, std::generic_category(), "weave: the fd was closed");
  }
};

}  // namespace detail

IoWatch::IoWatch(int fd, Loop& loop) {
  if (fd < 0) throw std::invalid_argument("weave::IoWatch: negative fd");
  auto* s = new detail::IoState(loop, fd);
  try {
    detail::LoopAccess::io_add(loop, fd, detail::kFiberEvents, s);
  } catch (...) {
    delete s;
    throw;
  }
  s->registered = true;
  s->registered_events = detail::kFiberEvents;
  state_ = s;
}

IoWatch& IoWatch::operator=(IoWatch&& other) noexcept {
  if (this != &other) {
    reset();
    state_ = std::exchange(other.state_, nullptr);
  }
  return *this;
}

void IoWatch::reset() noexcept {
  detail::IoState* s = std::exchange(state_, nullptr);
  if (!s) return;
  s->unregister();
  // Waiters would wait forever: the owner must not go while fibers wait (documented); if they
  // do anyway, wake them with EBADF rather than leave them hanging.
  s->shut();
  s->unref();
}

int IoWatch::fd() const noexcept { return state_ ? state_->fd : -1; }
bool IoWatch::closed() const noexcept { return state_ && state_->closed; }

void IoWatch::wait_readable(SourceLocation where) {
  if (!state_) throw std::logic_error("weave::IoWatch::wait_readable on an empty watch");
  state_->wait(state_->read_waiters, state_->readable, "weave::IoWatch::wait_readable", where);
}

void IoWatch::wait_writable(SourceLocation where) {
  if (!state_) throw std::logic_error("weave::IoWatch::wait_writable on an empty watch");
  state_->wait(state_->write_waiters, state_->writable, "weave::IoWatch::wait_writable", where);
}

void IoWatch::clear_readable() noexcept {
  if (state_ && !state_->closed) state_->readable = state_->read_hangup;
}
void IoWatch::clear_writable() noexcept {
  if (state_ && !state_->closed) state_->writable = false;
}
bool IoWatch::readable() const noexcept { return state_ && state_->readable; }
bool IoWatch::writable() const noexcept { return state_ && state_->writable; }

namespace {
void switch_to_callbacks(detail::IoState* s, const char* what) {
  if (!s) throw std::logic_error(std::string(what) + " on an empty watch");
  if (s->closed) throw std::logic_error(std::string(what) + " on a closed watch");
  if (s->callback_mode) return;
  if (!s->read_waiters.empty() || !s->write_waiters.empty())
    throw std::logic_error(std::string(what) + ": fibers are waiting on this watch");
  // From edge-triggered fiber mode to level-triggered callbacks: re-register from scratch.
  detail::LoopAccess::io_remove(*s->loop, s->fd);
  s->registered = false;
  s->registered_events = 0;
  s->callback_mode = true;
}
}  // namespace

void IoWatch::on_readable(std::function<void()> callback) {
  switch_to_callbacks(state_, "weave::IoWatch::on_readable");
  state_->has_read_callback = static_cast<bool>(callback);
  state_->read_callback = std::move(callback);
  ++state_->read_generation;
  state_->update_callback_registration();
}

void IoWatch::on_writable(std::function<void()> callback) {
  switch_to_callbacks(state_, "weave::IoWatch::on_writable");
  state_->has_write_callback = static_cast<bool>(callback);
  state_->write_callback = std::move(callback);
  ++state_->write_generation;
  state_->update_callback_registration();
}

void IoWatch::close() noexcept {
  if (!state_) return;
  int f = state_->shut();
  if (f >= 0) ::close(f);
}

int IoWatch::release() noexcept { return state_ ? state_->shut() : -1; }

}  // namespace weave
