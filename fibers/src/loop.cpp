// The loop proper: turns, timers, the idle wait, closing.

#include "weave/loop.hpp"

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <stdexcept>
#include <string>
#include <system_error>

#include "internal.hpp"
#include "sanitizer.hpp"

namespace weave {

namespace {

// Loops alive on this thread, most recent last: Loop::current() outside a running loop.
thread_local std::vector<Loop*> tl_loops;

// With ready work queued the loop still polls for I/O (when it watches any fd), but only every
// this many turns, so a loop busy with yields does not pay a system call per turn.
constexpr std::size_t kBusyPollInterval = 16;

bool env_debug() {
  const char* v = std::getenv("WEAVE_DEBUG");
  return v && v[0] == '1';
}

}  // namespace

Loop::Loop() : Loop(Options{}) {}

Loop::Loop(Options options)
    : default_stack_size_(options.stack_size),
      inbox_(new detail::Inbox()),
      clock_(options.clock ? options.clock : &steady_),
      owner_(std::this_thread::get_id()),
      debug_(options.debug.value_or(env_debug())),
      slow_duration_(options.slow_callback_duration) {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) {
    int e = errno;
    inbox_->release();
    throw std::system_error(e, std::generic_category(), "weave: epoll_create1");
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;  // nullptr marks the inbox's eventfd
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, inbox_->event_fd(), &ev) < 0) {
    int e = errno;
    ::close(epoll_fd_);
    inbox_->release();
    throw std::system_error(e, std::generic_category(), "weave: epoll_ctl(eventfd)");
  }
  eh_globals_ = eh_globals_of_this_thread();
#if WEAVE_TSAN
  main_ctx_.tsan_fiber = __tsan_get_current_fiber();
#endif
  detail::install_overflow_handler();
  tl_loops.push_back(this);
}

Loop::~Loop() {
  try {
    close();
  } catch (...) {
    // close() throws only when called on a running loop, which a destructor cannot be.
  }
  inbox_->release();
  tl_loops.erase(std::remove(tl_loops.begin(), tl_loops.end(), this), tl_loops.end());
}

bool detail::loop_alive(const Loop* l) noexcept {
  return std::find(tl_loops.begin(), tl_loops.end(), l) != tl_loops.end();
}

Loop* Loop::current_or_null() noexcept {
  if (Loop* l = detail::running_loop()) return l;
  return tl_loops.empty() ? nullptr : tl_loops.back();
}

Loop& Loop::current() {
  Loop* l = current_or_null();
  if (!l)
    throw std::logic_error(
        "weave: no loop on this thread; create a weave::Loop or start with weave::run()");
  return *l;
}

// ---- Running ----------------------------------------------------------------------------------

void Loop::run_until(bool (*done)(void*), void* arg) {
  check_can_run("the loop is closed", "the loop is already running");
  running_ = true;
  stopping_ = false;
  detail::set_running_loop(this);
  goal_ = done;
  goal_arg_ = arg;
  goal_dirty_ = true;
  struct Reset {
    Loop* l;
    ~Reset() {
      l->running_ = false;
      l->stopping_ = false;
      l->goal_ = nullptr;
      detail::set_running_loop(nullptr);
    }
  } reset{this};
  // Posts made before the run count as ready work (asyncio puts them on the ready queue).
  drain_inbox();
  while (!done(arg) && !stopping_) run_turn();
}

void Loop::check_can_run(const char* closed_msg, const char* running_msg) const {
  if (closed_) throw std::logic_error(std::string("weave: ") + closed_msg);
  if (running_) throw std::logic_error(std::string("weave: ") + running_msg);
  if (owner_ != std::this_thread::get_id())
    throw std::logic_error("weave: a loop can only run on the thread that created it");
  if (detail::running_loop())
    throw std::logic_error("weave: another loop is already running on this thread");
}

bool Loop::alive() const noexcept {
  return live_fibers_ > 0 || ready_count_ > 0 || !timers_.empty() || io_keepalive_ > 0 ||
         inbox_->has_items();
}

void Loop::run() {
  run_until([](void* p) { return !static_cast<Loop*>(p)->alive(); }, this);
}

void Loop::run_forever() {
  run_until([](void*) { return false; }, nullptr);
}

void Loop::stop() noexcept { stopping_ = true; }

void Loop::begin_turn(bool may_block) noexcept {
  drain_inbox();
  if (ready_count_ == 0 && !stopping_ && !timers_.empty() && clock_->autojump()) {
    // Virtual time: take what I/O and posts have to offer without waiting; if that leaves
    // nothing to run, jump the clock to the next timer instead of sleeping.
    poll(0);
    if (ready_count_ == 0) {
      if (stacks_.wants_trim()) stacks_.trim();  // idle in virtual time is idle too
      clock_->jump_to(timers_.top()->deadline);
    }
  } else if (ready_count_ == 0 && !stopping_) {
    if (may_block) {
      // About to sleep: a good moment to give surplus stack pages back.
      if (stacks_.wants_trim()) stacks_.trim();
      poll(next_timeout_ms());
    }
  } else if (io_watchers_ > 0 && ++turns_since_poll_ >= kBusyPollInterval) {
    poll(0);
  }
  fire_timers();
  turn_budget_ = ready_count_;
}

void Loop::run_turn() {
  begin_turn(true);
  run_budget();
}

void Loop::run_budget() {
  // Fibers may start further turns themselves (see take_next_fiber); the budget is shared.
  while (turn_budget_ > 0) {
    --turn_budget_;
    --ready_count_;
    dispatch(ready_.pop_front());
  }
}

void Loop::dispatch(detail::Runnable* r) {
  if (r->is_fiber()) {
    run_fiber(static_cast<detail::TaskBase*>(r));
    return;
  }
  if (!debug_) {
    r->invoke(r, true);
    return;
  }
  // Read before running: the node may be freed by the time the callback returns. Not every
  // non-fiber item is a callback node (a future's cross-thread wake-up is one too).
  SourceLocation where;
  if (r->invoke == &detail::CallbackNode::invoke_node)
    where = static_cast<detail::CallbackNode*>(r)->where;
  auto t0 = std::chrono::steady_clock::now();
  r->invoke(r, true);
  auto took = std::chrono::steady_clock::now() - t0;
  if (took > slow_duration_)
    note_slow(where.line ? std::string("callback scheduled at ") + where.file + ":" +
                               std::to_string(where.line) + " (" + where.function + ")"
                         : std::string("callback"),
              took);
}

int Loop::next_timeout_ms() {
  if (timers_.empty()) return -1;
  auto wait = timers_.top()->deadline - clock_->now();
  if (wait <= Duration::zero()) return 0;
  // A manual clock without autojump only moves when told: sleeping on it makes no sense.
  if (clock_ != &steady_ && !clock_->autojump()) return -1;
  // Round up: waking a little late fires the timer; waking early would spin a turn for nothing.
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(wait).count();
  return static_cast<int>(std::min<decltype(ms)>(ms, 24 * 3600 * 1000));
}

void Loop::poll(int timeout_ms) noexcept {
  turns_since_poll_ = 0;
  epoll_event events[64];
  int n = ::epoll_wait(epoll_fd_, events, 64, timeout_ms);
  if (n < 0) {
    if (errno == EINTR) return;  // a signal: the next turn looks again
    // EBADF, EFAULT or EINVAL: the loop's own state is corrupt; nothing sensible can go on.
    std::perror("weave: epoll_wait");
    std::abort();
  }
  for (int i = 0; i < n; ++i) {
    if (events[i].data.ptr == nullptr) {
      inbox_->drain_wakeups();
      drain_inbox();
    } else {
      // Only records readiness and schedules (see io_source.hpp): no source can be freed
      // before this batch is done.
      auto* src = static_cast<detail::IoSource*>(events[i].data.ptr);
      src->on_io(src, events[i].events);
    }
  }
}

void Loop::io_ctl(int op, int fd, std::uint32_t events, detail::IoSource* src) {
  check_thread("registering an fd");
  if (closed_) throw std::logic_error("weave: the loop is closed");
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = src;
  const int how = op == 1 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
  if (::epoll_ctl(epoll_fd_, how, fd, &ev) < 0) {
    int e = errno;
    throw std::system_error(
        e, std::generic_category(),
        how == EPOLL_CTL_ADD ? "weave: epoll_ctl(ADD)" : "weave: epoll_ctl(MOD)");
  }
  if (how == EPOLL_CTL_ADD) ++io_watchers_;
}

void Loop::io_remove(int fd) noexcept {
  if (epoll_fd_ < 0) return;  // closed: the epoll set is gone, and the fd with it
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr) == 0) --io_watchers_;
}

void Loop::drain_inbox() noexcept {
  detail::Runnable* r = inbox_->take_all();
  while (r) {
    detail::Runnable* next = r->next_ready;
    schedule(r);
    r = next;
  }
}

void Loop::arm_timer(detail::TimerNode* t, TimePoint when) {
  t->deadline = when;
  timers_.push(t);
  // An embedded loop between turns: the outer loop's wake-up may now be too late.
  if (!running_ && outside_work_hook_) [[unlikely]]
    outside_work_hook_(outside_work_arg_);
}

void Loop::fire_timers() noexcept {
  if (timers_.empty()) return;
  const TimePoint now = clock_->now();
  while (!timers_.empty() && timers_.top()->deadline <= now) {
    detail::TimerNode* n = timers_.pop();
    n->fire(n);
  }
}

void Loop::post(detail::Runnable* r) {
  if (!inbox_->post(r)) {
    r->invoke(r, false);
    throw std::runtime_error("weave: call_soon_threadsafe on a closed loop");
  }
}

// ---- Closing ----------------------------------------------------------------------------------

void Loop::close() {
  if (closed_) return;
  if (running_) throw std::logic_error("weave: close() called on a running loop");
  if (live_fibers_ > 0) {
    for (AnyTask& t : all_tasks()) t.cancel();
    running_ = true;
    detail::set_running_loop(this);
    while (live_fibers_ > 0) {
      drain_inbox();
      if (ready_count_ == 0 && timers_.empty()) {
        // Nothing can wake what is left: report it and give up on those fibers.
        tasks_.for_each([this](detail::ListNode* n) {
          detail::TaskBase* t = detail::task_of(n);
          call_exception_handler(
              {"task " + detail::display_name(t) +
                   " did not finish after being cancelled while the loop closed; abandoning it",
               nullptr, detail::display_name(t)});
          // Leaked with its stack: wait nodes on that stack may still sit in primitives that
          // outlive the loop, and waking it must stay a harmless no-op.
          t->state = detail::TaskState::Abandoned;
#if WEAVE_ASAN
          __lsan_ignore_object(t);  // leaked on purpose, see above
#endif
          tasks_.erase(n);
        });
        stacks_.keep_mapped();
        live_fibers_ = 0;
        break;
      }
      run_turn();
    }
    running_ = false;
    detail::set_running_loop(nullptr);
  }
  closed_ = true;
  // What is still queued will never run: release it.
  while (!ready_.empty()) {
    detail::Runnable* r = ready_.pop_front();
    if (!r->is_fiber()) r->invoke(r, false);
  }
  ready_count_ = 0;
  while (!timers_.empty()) {
    detail::TimerNode* n = timers_.pop();
    (void)n;  // task timers belong to abandoned fibers; callback timers are released below
    if (n->fire == &detail::CallbackNode::fire_timer)
      detail::release(static_cast<detail::CallbackNode*>(n));
  }
  for (detail::Runnable* r = inbox_->close(); r;) {
    detail::Runnable* next = r->next_ready;
    r->invoke(r, false);
    r = next;
  }
  // The inbox itself stays until the destructor: a post after close() must find it closed.
  ::close(epoll_fd_);
  epoll_fd_ = -1;
}

// ---- Errors and debugging -------------------------------------------------------------------

void Loop::set_exception_handler(ExceptionHandler handler) {
  exception_handler_ = std::move(handler);
}

void Loop::call_exception_handler(const ErrorContext& context) noexcept {
  try {
    if (exception_handler_) {
      exception_handler_(context);
      return;
    }
  } catch (...) {
    std::fputs("weave: the exception handler threw; falling back to stderr\n", stderr);
  }
  std::string line = "weave: " + context.message;
  if (context.exception) {
    try {
      std::rethrow_exception(context.exception);
    } catch (const std::exception& e) {
      line += std::string(": ") + e.what();
    } catch (const Cancelled& c) {
      line += std::string(": ") + c.what();
    } catch (...) {
      line += ": (an exception not derived from std::exception)";
    }
  }
  line += '\n';
  std::fputs(line.c_str(), stderr);
}

void Loop::set_debug_log(std::function<void(std::string_view)> log) { debug_log_ = std::move(log); }

void Loop::check_slice(detail::TaskBase* self) noexcept {
  auto took = std::chrono::steady_clock::now() - slice_start_;
  if (took > slow_duration_) try {
      note_slow("fiber slice of task " + detail::display_name(self) + " (ending at " +
                    self->where.file + ":" + std::to_string(self->where.line) + ")",
                took);
    } catch (...) {
      // Out of memory while formatting a warning: drop the warning, not the program.
    }
}

void Loop::wrong_thread(const char* what) const {
  throw std::logic_error(std::string("weave: Loop::") + what +
                         " called from a thread that does not own the loop; use "
                         "call_soon_threadsafe");
}

void Loop::note_slow(const std::string& what, std::chrono::nanoseconds took) {
  char ms[32];
  std::snprintf(ms, sizeof ms, "%.3f", std::chrono::duration<double, std::milli>(took).count());
  std::string msg = "weave: slow " + what + " held the loop for " + ms + " ms";
  if (debug_log_) {
    debug_log_(msg);
  } else {
    msg += '\n';
    std::fputs(msg.c_str(), stderr);
  }
}

// ---- Callback nodes and handles ---------------------------------------------------------------

namespace detail {

CallbackNode::CallbackNode(Loop* l, InlineFunction f, SourceLocation w) noexcept
    : fn(std::move(f)), loop(l), where(w) {
  invoke = &CallbackNode::invoke_node;
  fire = &CallbackNode::fire_timer;
}

void CallbackNode::invoke_node(Runnable* r, bool run) {
  auto* n = static_cast<CallbackNode*>(r);
  std::uint8_t expected = kPending;
  if (run && n->state.compare_exchange_strong(expected, kRan, std::memory_order_acq_rel)) {
    try {
      n->fn();
    } catch (...) {
      n->loop->call_exception_handler({"exception in callback", std::current_exception(), ""});
    }
  }
  n->fn.reset();  // release captures now, even if a Handle keeps the node
  release(n);     // the loop's reference
}

void CallbackNode::fire_timer(TimerNode* t) {
  auto* n = static_cast<CallbackNode*>(t);
  LoopAccess::schedule(*n->loop, n);
}

}  // namespace detail

bool Handle::cancel() noexcept {
  if (!node_) return false;
  std::uint8_t expected = detail::CallbackNode::kPending;
  if (!node_->state.compare_exchange_strong(expected, detail::CallbackNode::kCancelled,
                                            std::memory_order_acq_rel))
    return false;
  if (node_->armed()) {
    // Still in the timer heap: take it out now, so cancelled timers do not pile up.
    node_->loop->disarm_timer(node_);
    node_->fn.reset();
    detail::release(node_);  // the loop's reference
  }
  return true;
}

}  // namespace weave
