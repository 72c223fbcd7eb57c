#pragma once
// weave::Loop: the single-threaded event loop that runs fibers, callbacks and timers.

#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

#include "weave/clock.hpp"
#include "weave/detail/inbox.hpp"
#include "weave/detail/io_source.hpp"
#include "weave/detail/source_location.hpp"
#include "weave/detail/stack.hpp"
#include "weave/detail/task_base.hpp"
#include "weave/detail/timer_heap.hpp"
#include "weave/handle.hpp"

namespace weave {

template <class T>
class Task;
class AnyTask;

/// How to start a fiber: its name (for dumps and warnings), its stack size, and whether it
/// starts eagerly (runs at once, before the spawning fiber continues).
struct SpawnOptions {
  std::string name{};
  std::size_t stack_size = 0;  // 0: the loop's default
  bool eager = false;
};

/// What the exception handler is told (asyncio's context dict).
struct ErrorContext {
  std::string message;
  std::exception_ptr exception;  // may be null
  std::string task_name;         // empty when no task is involved
};

namespace detail {
struct LoopAccess;
// The loop running on this thread, if any. A function-local thread_local, defined inline, so
// that every suspending call finds its fiber without a call into the library.
inline Loop*& running_loop_slot() noexcept {
  static thread_local Loop* running = nullptr;
  return running;
}
}  // namespace detail

/// A single-threaded event loop (asyncio's event loop).
///
/// One turn of the loop runs every callback and fiber that was ready when the turn began, in
/// FIFO order; then it waits for I/O or cross-thread posts, no longer than until the next timer
/// (and not at all if something is ready); then it moves expired timers to the ready queue.
/// An idle loop sleeps in epoll_wait and uses no CPU.
///
/// @par Thread safety
/// A loop belongs to the thread that created it. Only call_soon_threadsafe() and completing a
/// Promise may be used from other threads; everything else must be called on the loop's
/// thread (checked in debug builds).
class Loop {
 public:
  struct Options {
    /// Where time comes from; not owned, must outlive the loop. nullptr: steady_clock.
    Clock* clock = nullptr;
    /// Usable stack bytes for fibers spawned without an explicit size.
    std::size_t stack_size = 256 * 1024;
    /// Debug mode; unset: on if the environment variable WEAVE_DEBUG is set to 1.
    std::optional<bool> debug = std::nullopt;
    /// In debug mode, callbacks and fiber slices that hold the loop longer are reported.
    Duration slow_callback_duration = std::chrono::milliseconds(100);
  };

  Loop();
  explicit Loop(Options options);
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;
  /// Closes the loop (see close()).
  ~Loop();

  /// The loop that is running on this thread or, if none is running, the one most recently
  /// created on this thread and still alive. Throws std::logic_error if there is none.
  static Loop& current();
  /// Like current(), but nullptr instead of throwing.
  static Loop* current_or_null() noexcept;

  // ---- Running ---------------------------------------------------------------------------

  /// Runs until nothing is left to do: no live task, no ready callback and no pending timer.
  void run();
  /// Runs until stop() is called.
  void run_forever();
  /// Runs until `task` is done and returns its result (a reference into the task), or rethrows
  /// its exception. Throws std::runtime_error if stop() ended the run first.
  template <class T>
  decltype(auto) run_until_complete(Task<T>& task);
  /// The same for a temporary task; the result is moved out.
  template <class T>
  T run_until_complete(Task<T>&& task) {
    if constexpr (std::is_void_v<T>)
      run_until_complete(task);
    else
      return std::move(run_until_complete(task));
  }
  /// Makes run()/run_forever()/run_until_complete() return after the current turn.
  void stop() noexcept;
  /// Cancels every live task and runs the loop until they have finished, then releases the
  /// loop's resources. Tasks that refuse to end after cancellation (they catch Cancelled and
  /// block again with nothing left that could wake them) are reported through the exception
  /// handler and abandoned. Must not be called while the loop is running.
  void close();
  bool is_running() const noexcept { return running_; }
  bool is_closed() const noexcept { return closed_; }

  // ---- Embedding in another event loop ------------------------------------------------------
  //
  // To run a weave loop inside a foreign event loop on the same thread (Boost.Asio's io_context,
  // GLib, Qt, libuv), in the manner of libuv's uv_backend_fd / uv_backend_timeout /
  // UV_RUN_NOWAIT: the outer loop watches native_handle() for readability and sleeps no longer
  // than poll_timeout(); when either fires it calls run_nowait(). weave::AsioDriver
  // (weave/asio.hpp) is built on these four calls. They are loop-affine, like everything else.

  /// The loop's pollable file descriptor (its epoll set), readable while posts from other
  /// threads (call_soon_threadsafe, promise and bridge completions) or I/O events wait. The loop
  /// owns it: never read or close it, only register it with the outer loop for readability
  /// (level- or edge-triggered: run_nowait(true) consumes what made it readable). -1 once the
  /// loop is closed.
  int native_handle() const noexcept;

  /// Runs one turn of the loop without blocking: takes the posts from other threads, looks for
  /// I/O events without waiting (if `check_io`), fires the expired timers, and runs what was
  /// ready at the start of the turn (fibers and callbacks, FIFO). A fiber that is ready again
  /// runs in the next call, so the outer loop gets its turn in between. On a clock with
  /// autojump (ManualClock) a turn that finds nothing ready jumps the clock to the next timer,
  /// as run() does.
  ///
  /// `check_io = false` skips the non-blocking epoll_wait, a system call: pass it when the outer
  /// loop calls for another reason than native_handle() becoming readable (work was ready, a
  /// timer expired). Posts are taken either way, but only a checking call clears the readiness
  /// of native_handle() that they caused.
  ///
  /// Returns false if stop() was called during the turn (the outer loop should stop driving
  /// this one), true otherwise.
  ///
  /// @par Errors
  /// std::logic_error if the loop is closed or already running, if called from a thread that
  /// does not own the loop, or while another loop runs on this thread.
  bool run_nowait(bool check_io = true);

  /// How long the outer loop may sleep on native_handle() before it must call run_nowait()
  /// again: zero if work is ready or posted (or, on an autojump clock, if a timer is pending),
  /// the time until the next timer, or nullopt if only a post or an I/O event can give the
  /// loop work.
  std::optional<Duration> poll_timeout() const noexcept;

  /// True while run() would not return: live fibers, ready callbacks, armed timers or posts
  /// (libuv's uv_loop_alive). An outer loop that should end with this one checks it.
  bool alive() const noexcept;

  // ---- Callbacks and time -----------------------------------------------------------------

  /// Schedules `fn` to run on the loop's context (never inside a fiber) in a later turn, in
  /// FIFO order with other ready callbacks and fibers. `where` (the caller's location by
  /// default) names the callback in debug-mode warnings.
  template <class F>
  Handle call_soon(F&& fn, SourceLocation where = SourceLocation::current()) {
    check_thread("call_soon");
    // One allocation per callback, on purpose: the returned Handle can outlive the run (and be
    // cancelled from another thread for posted callbacks), so the node is reference-counted on
    // the heap. The callable itself is stored inline in the node when it is small.
    auto* n = new detail::CallbackNode(this, detail::InlineFunction(std::forward<F>(fn)), where);
    Handle h(n);
    schedule(n);
    return h;
  }
  /// Runs `fn` after `delay` of loop time.
  template <class F>
  Handle call_later(Duration delay, F&& fn, SourceLocation where = SourceLocation::current()) {
    return call_at(time() + delay, std::forward<F>(fn), where);
  }
  /// Runs `fn` at loop time `when`; callbacks with equal deadlines run in the order scheduled.
  template <class F>
  Handle call_at(TimePoint when, F&& fn, SourceLocation where = SourceLocation::current()) {
    check_thread("call_at");
    auto* n = new detail::CallbackNode(this, detail::InlineFunction(std::forward<F>(fn)), where);
    Handle h(n);
    arm_timer(n, when);
    return h;
  }
  /// Like call_soon(), from any thread; wakes the loop if it is sleeping.
  /// Throws std::runtime_error if the loop is closed.
  ///
  /// @par Thread safety
  /// Safe from any thread.
  template <class F>
  Handle call_soon_threadsafe(F&& fn, SourceLocation where = SourceLocation::current()) {
    auto* n = new detail::CallbackNode(this, detail::InlineFunction(std::forward<F>(fn)), where);
    Handle h(n);
    post(n);
    return h;
  }

  /// The loop's current time (from its Clock).
  TimePoint time() const noexcept { return clock_->now(); }
  Clock& clock() const noexcept { return *clock_; }

  // ---- Tasks ------------------------------------------------------------------------------

  /// Starts `fn(args...)` in a new fiber on this loop; see weave::spawn.
  template <class F, class... Args>
  requires(!std::is_same_v<std::decay_t<F>, SpawnOptions>) auto spawn(F&& fn, Args&&... args);
  template <class F, class... Args>
  auto spawn(SpawnOptions options, F&& fn, Args&&... args);

  /// Every task of this loop that is not done (asyncio.all_tasks).
  std::vector<AnyTask> all_tasks() const;
  /// Fibers started and not yet finished.
  std::size_t live_fibers() const noexcept { return live_fibers_; }

  // ---- Errors and debugging ---------------------------------------------------------------

  using ExceptionHandler = std::function<void(const ErrorContext&)>;
  /// Replaces the handler for errors nobody else could receive ("Task exception was never
  /// retrieved", exceptions escaping callbacks). nullptr restores the default, which prints to
  /// stderr.
  void set_exception_handler(ExceptionHandler handler);
  void call_exception_handler(const ErrorContext& context) noexcept;

  void set_debug(bool on) noexcept { debug_ = on; }
  bool debug() const noexcept { return debug_; }
  void set_slow_callback_duration(Duration d) noexcept { slow_duration_ = d; }
  Duration slow_callback_duration() const noexcept { return slow_duration_; }
  /// Where debug-mode warnings go; nullptr restores the default (stderr).
  void set_debug_log(std::function<void(std::string_view)> log);

  /// Writes every task with its id, name, state and, for suspended tasks, the file:line where
  /// it is suspended.
  void dump_tasks(std::ostream& out) const;
  std::string dump_tasks() const;

 private:
  friend struct detail::LoopAccess;
  friend class Handle;
  friend struct detail::CallbackNode;

  // Loop-affine operations check their thread in debug builds (NDEBUG unset).
  void check_thread([[maybe_unused]] const char* what) const {
#ifndef NDEBUG
    if (owner_ != std::this_thread::get_id()) wrong_thread(what);
#endif
  }
  [[noreturn]] void wrong_thread(const char* what) const;

  void schedule(detail::Runnable* r) noexcept {
    ready_.push_back(r);
    ++ready_count_;
    // A running loop pays one load and a branch not taken. An embedded loop between turns
    // tells its outer loop, so that work made ready by the outer loop's own callbacks (an Asio
    // handler that sets an Event, spawns, cancels) is not stranded until something else
    // happens.
    if (!running_ && outside_work_hook_) [[unlikely]]
      outside_work_hook_(outside_work_arg_);
  }
  void post(detail::Runnable* r);
  void arm_timer(detail::TimerNode* t, TimePoint when);
  void disarm_timer(detail::TimerNode* t) noexcept {
    if (t->armed()) timers_.erase(t);
  }

  // Tasks and fibers (defined in switch.cpp and task.cpp).
  void start(detail::TaskBase* t, SpawnOptions&& options);
  void wake(detail::TaskBase* t) noexcept;
  bool park(detail::TaskBase* self, SourceLocation where);
  void yield_now(detail::TaskBase* self, SourceLocation where);
  void switch_out(detail::TaskBase* self);
  void run_fiber(detail::TaskBase* t);
  bool prepare(detail::TaskBase* t) noexcept;
  void finish_unstarted(detail::TaskBase* t, detail::Outcome outcome,
                        std::exception_ptr error) noexcept;
  detail::SwitchContext* take_next_fiber() noexcept;
  void jump(detail::SwitchContext* from, detail::SwitchContext* to);
  void land(void* from_fctx, void* transfer_data) noexcept;
  void check_slice(detail::TaskBase* self) noexcept;
  void complete(detail::TaskBase* t) noexcept;
  void recycle(detail::TaskBase* t) noexcept;
  // Static: the last handle to a task may go after its loop did.
  static void release(detail::TaskBase* t) noexcept;
  bool cancel_task(detail::TaskBase* t) noexcept;

  // The loop proper (loop.cpp).
  void begin_turn(bool may_block) noexcept;
  // For an embedding outer loop (loop_embed.cpp): runs the suspended fiber `t` now, as a turn of
  // its own, if the loop is idle (not running, nothing ready). See LoopAccess::run_woken.
  bool run_woken(detail::TaskBase* t, bool& stopped);
  struct OneTurnScope;  // loop_embed.cpp: the loop running for one turn of an outer loop
  void run_turn();
  void run_budget();  // runs the items left in the current turn's budget
  // The checks every way of running the loop makes first (std::logic_error on failure).
  void check_can_run(const char* closed_msg, const char* running_msg) const;
  void run_until(bool (*done)(void*), void* arg);
  void dispatch(detail::Runnable* r);
  void drain_inbox() noexcept;
  void fire_timers() noexcept;
  // The goal of run_until can only be reached when a task completes or a future is notified;
  // those set goal_dirty_, so a busy loop does not call the goal's function every turn.
  bool at_goal() noexcept {
    if (stopping_) return true;
    if (!goal_dirty_) return false;
    goal_dirty_ = false;
    return goal_ && goal_(goal_arg_);
  }
  void poll(int timeout_ms) noexcept;
  void io_ctl(int op, int fd, std::uint32_t events, detail::IoSource* src);
  void io_remove(int fd) noexcept;
  int next_timeout_ms();
  void note_slow(const std::string& what, std::chrono::nanoseconds took);

  detail::RunQueue ready_;
  std::size_t ready_count_ = 0;
  std::size_t turn_budget_ = 0;  // items of the current turn still to run
  detail::TimerHeap timers_;

  detail::SwitchContext main_ctx_;  // the loop's own stack
  detail::SwitchContext* running_ctx_ = &main_ctx_;
  detail::TaskBase* current_ = nullptr;  // the task whose fiber is running, or nullptr
  detail::IntrusiveList tasks_;          // every task of this loop whose state is alive
  std::size_t live_fibers_ = 0;
  std::uint64_t next_task_id_ = 1;
  void* eh_globals_ = nullptr;  // this thread's __cxa_eh_globals
  std::size_t turns_since_poll_ = 0;
  std::size_t io_watchers_ = 0;      // fds registered with epoll besides the inbox's eventfd
  std::ptrdiff_t io_keepalive_ = 0;  // registered fds that keep run() going (callback mode)
  bool (*goal_)(void*) = nullptr;    // run_until's condition, checked at every turn
  bool goal_dirty_ = false;          // something completed since the goal was last checked
  void* goal_arg_ = nullptr;

  detail::StackPool stacks_;
  std::size_t default_stack_size_;
  detail::Inbox* inbox_;
  int epoll_fd_ = -1;
  SteadyClock steady_;
  Clock* clock_;
  std::thread::id owner_;
  Loop* previous_current_ = nullptr;  // restored when this loop goes away

  bool running_ = false;
  bool stopping_ = false;
  bool closed_ = false;
  // Set by an embedder (bridge::Embedder, through LoopAccess::set_outside_work_hook): called on
  // the loop's thread when a runnable is scheduled or a timer armed while the loop is not
  // running.
  void (*outside_work_hook_)(void*) noexcept = nullptr;
  void* outside_work_arg_ = nullptr;
  bool debug_ = false;
  Duration slow_duration_;
  std::chrono::steady_clock::time_point slice_start_{};
  ExceptionHandler exception_handler_;
  std::function<void(std::string_view)> debug_log_;
};

namespace detail {

/// The loop's internals that weave's own templates (tasks, futures, primitives) build on.
struct LoopAccess {
  static void schedule(Loop& l, Runnable* r) noexcept { l.schedule(r); }
  /// For an outer event loop that drives `l` between its own callbacks: `hook(arg)` is called
  /// whenever work is scheduled or a timer armed while `l` is not running (nullptr: none).
  static void set_outside_work_hook(Loop& l, void (*hook)(void*) noexcept, void* arg) noexcept {
    l.outside_work_hook_ = hook;
    l.outside_work_arg_ = arg;
  }
  /// Tells the loop that a future completed (run_until may have reached its goal).
  static void note_completion(Loop& l) noexcept { l.goal_dirty_ = true; }
  static void post(Loop& l, Runnable* r) { l.post(r); }
  static Inbox* inbox(Loop& l) noexcept { return l.inbox_; }
  /// Wakes a suspended task (a no-op for any other state, an abandoned task included, whose
  /// loop may be gone: `l` is then not touched).
  static void wake(Loop& l, TaskBase* t) noexcept {
    if (t->state == TaskState::Suspended) l.wake(t);
  }
  static void start(Loop& l, TaskBase* t, SpawnOptions&& o) {
    l.check_thread("spawn");
    l.start(t, std::move(o));
  }
  static void release(TaskBase* t) noexcept { Loop::release(t); }
  static bool cancel(TaskBase* t) noexcept { return t->loop->cancel_task(t); }
  static void arm_timer(Loop& l, TimerNode* t, TimePoint when) { l.arm_timer(t, when); }
  static void disarm_timer(Loop& l, TimerNode* t) noexcept { l.disarm_timer(t); }
  static void run_until(Loop& l, bool (*done)(void*), void* arg) { l.run_until(done, arg); }
  /// For an outer loop that embeds `l` (weave::AsioDriver), from the top of one of its own
  /// callbacks on the loop's thread: runs the suspended task `t`, which that callback has just
  /// made ready, at once, as a turn of the loop with only `t` in it, instead of waking it and
  /// running a whole turn (posts, timers, the ready queue). Only when nothing else is ready, so
  /// FIFO order holds: what the full turn would have run after `t` (expired timers, posts) runs
  /// in the next turn instead. Returns false, doing nothing, if the loop is running, closed or
  /// has ready work, if another loop runs on this thread, or if `t` is not suspended; the caller
  /// then wakes `t` the ordinary way. `stopped` tells whether stop() was called meanwhile.
  static bool run_woken(Loop& l, TaskBase* t, bool& stopped) { return l.run_woken(t, stopped); }

  /// The reactor (loop.cpp): registers `fd` with the loop's epoll set, its events reported to
  /// `src`; `keeps_running` makes run() wait for it (callback-driven fds, like a Protocol
  /// server, are work the loop has; fds that only fibers wait on are not, the fibers are).
  /// Throws std::system_error.
  static void io_add(Loop& l, int fd, std::uint32_t events, IoSource* src) {
    l.io_ctl(1, fd, events, src);
  }
  static void io_modify(Loop& l, int fd, std::uint32_t events, IoSource* src) {
    l.io_ctl(3, fd, events, src);
  }
  /// Never throws: a closed loop or an fd already gone is not an error here.
  static void io_remove(Loop& l, int fd) noexcept { l.io_remove(fd); }
  static void io_keep_running(Loop& l, int delta) noexcept { l.io_keepalive_ += delta; }

  /// The task running on this thread's current loop, or nullptr when not inside a fiber.
  static TaskBase* current_task() noexcept {
    Loop* l = running_loop_slot();
    return l ? l->current_ : nullptr;
  }
  static TaskBase* current_task_of(const Loop& l) noexcept { return l.current_; }
  /// The running task; throws std::logic_error naming `what` when called outside a fiber.
  static TaskBase* require_fiber(const char* what) {
    TaskBase* t = current_task();
    if (t == nullptr) [[unlikely]]
      not_in_fiber(what);
    return t;
  }
  [[noreturn]] static void not_in_fiber(const char* what);
  /// Checks, in debug builds, that `l` is used from its own thread.
  static void check_thread(const Loop& l, const char* what) { l.check_thread(what); }
  /// Throws Cancelled if a cancellation is visible to `self`: a cancel() not held back by a
  /// shield, or a triggered cancel scope it is inside (and not shielded from).
  static void checkpoint(TaskBase* self) {
    if (self->cancel_requested || self->triggered_scopes) [[unlikely]]
      if (cancel_pending_slow(self)) throw_cancelled(self);
  }
  static bool cancel_pending(const TaskBase* self) noexcept {
    return (self->cancel_requested || self->triggered_scopes) && cancel_pending_slow(self);
  }
  static bool cancel_pending_slow(const TaskBase* self) noexcept;
  /// Throws the visible cancellation: the task's own (delivered once: the request is cleared)
  /// or, if none, the outermost triggered scope's (level-triggered: it stays until that scope
  /// is left).
  [[noreturn]] static void throw_cancelled(TaskBase* self);
  /// Marks a scope cancelled and wakes its fiber if the cancellation is visible to it.
  static void trigger_scope(ScopeNode* s) noexcept;
  /// Suspends `self` until woken. Returns false if cancel() woke it: the caller then leaves
  /// whatever wait queue it joined and calls throw_cancelled().
  static bool park(TaskBase* self, SourceLocation where) { return self->loop->park(self, where); }
  static void yield_now(TaskBase* self, SourceLocation where) {
    self->loop->yield_now(self, where);
  }
  /// Blocks until `t` is done: from a fiber by suspending it, from outside any fiber by running
  /// the loop (if it is not already running).
  static void wait_done(TaskBase* t, const char* what, SourceLocation where);
  /// Where every fiber begins (switch.cpp).
  static void fiber_entry(void* from_fctx, void* data);
};

}  // namespace detail
}  // namespace weave

#include "weave/task.hpp"
