// Signals on the loop: a real sigaction handler that only counts the delivery and posts a node
// to the owning loop's inbox; the loop runs the handlers and wakes the SignalSets.

#include "weave/net/signals.hpp"

#include <sched.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "weave/detail/inbox.hpp"
#include "weave/detail/runnable.hpp"

namespace weave::net {
namespace detail {

namespace {

// Linux numbers signals 1..64 (NSIG is 65); the SignalSet masks are 64 bits wide.
constexpr int kMaxSignal = 64;
static_assert(NSIG - 1 <= kMaxSignal);

// What the signal handler reads. Only lock-free atomics: the handler may interrupt any thread
// at any instruction, the loop's own thread included.
struct HandlerTable {
  std::atomic<SignalHub*> target[kMaxSignal + 1];    // the hub that owns each signal, or null
  std::atomic<std::uint32_t> count[kMaxSignal + 1];  // deliveries not yet dispatched
  // Handlers between reading `target` and their last use of the hub. A hub gives up a signal by
  // clearing `target` and then waiting for this to reach zero, so that it is not freed (and the
  // loop's inbox is not released) under a handler running on another thread.
  std::atomic<int> in_flight;
  // Set by the handler when it found its loop gone and put the earlier disposition back
  // itself: the signal is then no longer weave's, and must not be "restored" again.
  std::atomic<bool> fell_back[kMaxSignal + 1];
};
HandlerTable g_table{};  // zero-initialised before any code runs: no hub, no count

static_assert(std::atomic<SignalHub*>::is_always_lock_free);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(std::atomic<int>::is_always_lock_free);
static_assert(std::atomic<bool>::is_always_lock_free);

// Everything below is guarded by g_mutex (never taken by the signal handler): which hub owns
// each signal, the disposition found before it was taken, and the hubs that exist.
std::mutex g_mutex;
SignalHub* g_owner[kMaxSignal + 1] = {};
struct sigaction g_previous[kMaxSignal + 1];
std::vector<SignalHub*> g_hubs;

extern "C" void weave_net_on_signal(int sig);

void check_signal(int sig) {
  if (sig < 1 || sig > kMaxSignal || sig >= NSIG)
    throw std::invalid_argument("weave::net: signal number " + std::to_string(sig) +
                                " is out of range");
  switch (sig) {
    case SIGKILL:
    case SIGSTOP:
      throw std::invalid_argument("weave::net: signal " + std::to_string(sig) +
                                  " (SIGKILL/SIGSTOP) cannot be caught");
    case SIGSEGV:
    case SIGBUS:
    case SIGFPE:
    case SIGILL:
    case SIGTRAP:
    case SIGSYS:
      // Raised by a faulting instruction: the thread cannot go on until the handler fixed the
      // cause, so a handler that runs later on the loop makes no sense (and weave's stack
      // overflow report owns SIGSEGV/SIGBUS).
      throw std::invalid_argument("weave::net: signal " + std::to_string(sig) +
                                  " is a fault signal; it cannot be handled on the loop");
    default:
      break;
  }
}

}  // namespace

// One per loop that handles signals. The node it posts to the loop's inbox is its Runnable
// base; the handlers and SignalSets it serves are loop-affine.
struct SignalHub : weave::detail::Runnable {
  Loop* loop;
  weave::detail::Inbox* inbox;  // retained: closed() tells whether the loop is gone
  // True from the handler's post until the loop starts dispatching: the node is in the inbox
  // or the ready queue, and must be neither posted again nor freed.
  std::atomic<bool> posted{false};
  bool dispatching = false;
  bool dying = false;  // nothing left to serve; freed once the node is back
  std::function<void(int)> handlers[kMaxSignal + 1];
  int users[kMaxSignal + 1] = {};  // the handler (one) plus the SignalSets, per signal
  std::vector<SignalSet*> sets;

  explicit SignalHub(Loop& l) : loop(&l), inbox(weave::detail::LoopAccess::inbox(l)) {
    inbox->retain();
    invoke = &SignalHub::run;
  }
  ~SignalHub() { inbox->release(); }

  bool alive() const noexcept { return !inbox->closed(); }
  bool empty() const noexcept {
    return sets.empty() &&
           std::all_of(std::begin(users), std::end(users), [](int n) { return n == 0; });
  }

  // Runs on the loop (run == true) or when the loop closes with the node queued (false).
  static void run(weave::detail::Runnable* r, bool run) {
    auto* h = static_cast<SignalHub*>(r);
    // Cleared first: a signal from here on posts the node again, so none is missed; one that
    // was counted before is picked up below.
    h->posted.store(false, std::memory_order_seq_cst);
    if (!run || h->dying) {
      if (!run) {
        // The loop is closing: what it handled falls back to the earlier dispositions.
        std::lock_guard lock(g_mutex);
        h->release_all_locked();
      }
      maybe_free(h);
      return;
    }
    h->dispatch();
    maybe_free(h);
  }

  static void maybe_free(SignalHub* h) noexcept {
    bool free = false;
    {
      std::lock_guard lock(g_mutex);
      // A handler that removed the last use while it ran could not retire the hub: do it now.
      if (!h->dispatching && h->empty()) h->dying = true;
      if (h->dying && !h->dispatching && !h->posted.load() && h->sets.empty()) {
        g_hubs.erase(std::remove(g_hubs.begin(), g_hubs.end(), h), g_hubs.end());
        free = true;
      }
    }
    if (free) delete h;
  }

  void dispatch() {
    dispatching = true;
    struct Done {
      SignalHub* h;
      ~Done() { h->dispatching = false; }
    } done{this};
    for (int sig = 1; sig <= kMaxSignal; ++sig) {
      if (users[sig] == 0) continue;
      std::uint32_t n = g_table.count[sig].exchange(0, std::memory_order_acq_rel);
      for (std::uint32_t i = 0; i < n && users[sig] > 0; ++i) {
        // The sets first: waking them runs no user code, so the list cannot change under us.
        for (SignalSet* s : sets)
          if (s->contains(sig)) s->deliver(sig);
        if (handlers[sig]) {
          // A copy: the handler may remove or replace itself while it runs.
          std::function<void(int)> fn = handlers[sig];
          try {
            fn(sig);
          } catch (...) {
            loop->call_exception_handler(
                {"exception in the handler of signal " + std::to_string(sig),
                 std::current_exception(),
                 {}});
          }
        }
      }
    }
  }

  // Takes `sig` for this hub (one more user). g_mutex held.
  void acquire_locked(int sig) {
    if (g_owner[sig] != this) {
      SignalHub* other = g_owner[sig];
      if (other && other->alive())
        throw std::logic_error("weave::net: signal " + std::to_string(sig) +
                               " is already handled by another loop");
      bool install = true;
      if (other) {
        // Left behind by a loop that was destroyed without removing its handlers: take the
        // signal over, keeping the disposition it saved (unless a delivery found the loop
        // gone and already put that disposition back).
        other->users[sig] = 0;
        other->handlers[sig] = nullptr;
        g_table.target[sig].store(nullptr);
        quiesce();
        g_table.count[sig].store(0);
        g_owner[sig] = nullptr;
        install = g_table.fell_back[sig].exchange(false);
      }
      if (install) {
        struct sigaction sa {};
        sa.sa_handler = &weave_net_on_signal;
        sigemptyset(&sa.sa_mask);
        // SA_RESTART: the threads this signal interrupts resume their system calls instead of
        // failing with EINTR, which is what code that never asked for the signal expects.
        sa.sa_flags = SA_RESTART;
        struct sigaction previous {};
        if (::sigaction(sig, &sa, &previous) != 0)
          throw std::system_error(errno, std::generic_category(), "weave::net: sigaction");
        g_previous[sig] = previous;
        g_table.fell_back[sig].store(false);
      }
      g_owner[sig] = this;
      g_table.count[sig].store(0);
      g_table.target[sig].store(this);
    }
    ++users[sig];
  }

  // Drops one user of `sig`; the last one gives the signal back. g_mutex held.
  void release_locked(int sig) noexcept {
    if (users[sig] == 0 || --users[sig] > 0) return;
    give_back_locked(sig);
  }

  void give_back_locked(int sig) noexcept {
    if (g_owner[sig] != this) return;
    // Restore first, then stop posting: a delivery in between is still ours and is dispatched.
    if (!g_table.fell_back[sig].load()) ::sigaction(sig, &g_previous[sig], nullptr);
    g_table.target[sig].store(nullptr);
    quiesce();
    g_table.fell_back[sig].store(false);
    g_table.count[sig].store(0);
    g_owner[sig] = nullptr;
  }

  void release_all_locked() noexcept {
    for (int sig = 1; sig <= kMaxSignal; ++sig) {
      if (users[sig] > 0) give_back_locked(sig);
      users[sig] = 0;
      handlers[sig] = nullptr;
    }
    dying = true;
  }

  // Waits until no signal handler can still be using a hub it read from the table. Handlers
  // are a handful of instructions, so this spins for nanoseconds, and only when a signal
  // arrives on another thread at this very moment; one that interrupts this thread finishes
  // before the spin resumes.
  static void quiesce() noexcept {
    while (g_table.in_flight.load(std::memory_order_seq_cst) != 0) ::sched_yield();
  }
};

namespace {

extern "C" void weave_net_on_signal(int sig) {
  const int saved_errno = errno;  // write() in Inbox::post may change it
  g_table.in_flight.fetch_add(1, std::memory_order_seq_cst);
  if (SignalHub* h = g_table.target[sig].load(std::memory_order_seq_cst)) {
    g_table.count[sig].fetch_add(1, std::memory_order_acq_rel);
    // Inbox::post is a lock-free push and a write() to an eventfd: async-signal-safe.
    if (!h->posted.exchange(true, std::memory_order_seq_cst)) {
      if (!h->inbox->post(h)) {
        // The loop was destroyed without giving the signal back. Rather than swallow this
        // signal and every later one (a Ctrl-C that does nothing), put the earlier disposition
        // back and deliver the signal to it: raised here, it is blocked while this handler
        // runs and arrives as soon as it returns. sigaction() and raise() are
        // async-signal-safe, and g_previous[sig] was written before `target` was published.
        h->posted.store(false);
        g_table.fell_back[sig].store(true);
        ::sigaction(sig, &g_previous[sig], nullptr);
        ::raise(sig);
      }
    }
  }
  g_table.in_flight.fetch_sub(1, std::memory_order_seq_cst);
  errno = saved_errno;
}

// Frees the hubs of loops that were destroyed while still handling signals (their disposition
// goes back to what it was before). g_mutex held. Hubs with SignalSets left are kept until the
// sets are gone, since those still point at them.
void collect_dead_locked() {
  for (std::size_t i = 0; i < g_hubs.size();) {
    SignalHub* h = g_hubs[i];
    if (h->alive() || h->posted.load()) {
      ++i;
      continue;
    }
    h->release_all_locked();
    if (h->sets.empty()) {
      g_hubs.erase(g_hubs.begin() + static_cast<std::ptrdiff_t>(i));
      delete h;
    } else {
      ++i;
    }
  }
}

// The hub of `loop`, created on first use. g_mutex held.
SignalHub* hub_for_locked(Loop& loop, bool create) {
  weave::detail::Inbox* inbox = weave::detail::LoopAccess::inbox(loop);
  for (SignalHub* h : g_hubs)
    if (h->loop == &loop && h->inbox == inbox && !h->dying) return h;
  if (!create) return nullptr;
  collect_dead_locked();
  auto* h = new SignalHub(loop);
  g_hubs.push_back(h);
  return h;
}

// Marks an unused hub for freeing (now, or when its queued node comes back). g_mutex held.
bool retire_if_empty_locked(SignalHub* h) noexcept {
  if (!h->empty() || h->dispatching) return false;
  h->dying = true;
  if (h->posted.load()) return false;  // run() frees it
  g_hubs.erase(std::remove(g_hubs.begin(), g_hubs.end(), h), g_hubs.end());
  return true;
}

}  // namespace
}  // namespace detail

void add_signal_handler(int sig, std::function<void(int)> handler, Loop& loop) {
  detail::check_signal(sig);
  weave::detail::LoopAccess::check_thread(loop, "weave::net::add_signal_handler");
  if (!handler) throw std::invalid_argument("weave::net::add_signal_handler: empty handler");
  std::lock_guard lock(detail::g_mutex);
  detail::SignalHub* h = detail::hub_for_locked(loop, true);
  if (!h->handlers[sig]) {
    try {
      h->acquire_locked(sig);
    } catch (...) {
      if (detail::retire_if_empty_locked(h)) delete h;
      throw;
    }
  }
  h->handlers[sig] = std::move(handler);
}

bool remove_signal_handler(int sig, Loop& loop) {
  if (sig < 1 || sig > detail::kMaxSignal || sig >= NSIG)
    throw std::invalid_argument("weave::net: signal number " + std::to_string(sig) +
                                " is out of range");
  weave::detail::LoopAccess::check_thread(loop, "weave::net::remove_signal_handler");
  std::function<void(int)> old;  // destroyed after the lock is released
  detail::SignalHub* to_free = nullptr;
  {
    std::lock_guard lock(detail::g_mutex);
    detail::SignalHub* h = detail::hub_for_locked(loop, false);
    if (!h || !h->handlers[sig]) return false;
    old = std::move(h->handlers[sig]);
    h->handlers[sig] = nullptr;
    h->release_locked(sig);
    if (detail::retire_if_empty_locked(h)) to_free = h;
  }
  delete to_free;
  return true;
}

// ---- SignalSet -------------------------------------------------------------------------------

SignalSet::SignalSet(std::initializer_list<int> signals, Loop& loop) {
  for (int sig : signals) detail::check_signal(sig);
  weave::detail::LoopAccess::check_thread(loop, "weave::net::SignalSet");
  std::lock_guard lock(detail::g_mutex);
  hub_ = detail::hub_for_locked(loop, true);
  try {
    for (int sig : signals) {
      if (signals_ & bit(sig)) continue;
      hub_->acquire_locked(sig);
      signals_ |= bit(sig);
    }
  } catch (...) {
    for (int sig = 1; sig <= detail::kMaxSignal; ++sig)
      if (signals_ & bit(sig)) hub_->release_locked(sig);
    if (detail::retire_if_empty_locked(hub_)) delete hub_;
    throw;
  }
  hub_->sets.push_back(this);
}

SignalSet::~SignalSet() {
  detail::SignalHub* to_free = nullptr;
  {
    std::lock_guard lock(detail::g_mutex);
    auto& sets = hub_->sets;
    sets.erase(std::remove(sets.begin(), sets.end(), this), sets.end());
    for (int sig = 1; sig <= detail::kMaxSignal; ++sig)
      if (signals_ & bit(sig)) hub_->release_locked(sig);
    if (hub_->dying) {
      // A hub left over from a destroyed loop, kept alive for this set.
      if (sets.empty() && !hub_->posted.load()) {
        detail::g_hubs.erase(std::remove(detail::g_hubs.begin(), detail::g_hubs.end(), hub_),
                             detail::g_hubs.end());
        to_free = hub_;
      }
    } else if (detail::retire_if_empty_locked(hub_)) {
      to_free = hub_;
    }
  }
  delete to_free;
}

void SignalSet::add(int sig) {
  detail::check_signal(sig);
  if (signals_ & bit(sig)) return;
  std::lock_guard lock(detail::g_mutex);
  hub_->acquire_locked(sig);
  signals_ |= bit(sig);
}

void SignalSet::remove(int sig) {
  if (!contains(sig)) return;
  std::lock_guard lock(detail::g_mutex);
  signals_ &= ~bit(sig);
  if (queued_ & bit(sig)) {
    // Drop it from the FIFO, keeping the others' order.
    int kept = 0;
    for (int i = 0; i < count_; ++i) {
      int s = queue_[(head_ + i) % 64];
      if (s != sig) queue_[(head_ + kept++) % 64] = s;
    }
    count_ = kept;
    queued_ &= ~bit(sig);
  }
  hub_->release_locked(sig);
}

bool SignalSet::contains(int sig) const noexcept {
  return sig >= 1 && sig <= detail::kMaxSignal && (signals_ & bit(sig)) != 0;
}

void SignalSet::deliver(int sig) noexcept {
  if (!(queued_ & bit(sig))) {
    queued_ |= bit(sig);
    queue_[(head_ + count_) % 64] = sig;
    ++count_;
  }
  wake_one();
}

void SignalSet::wake_one() noexcept {
  // One waiter is enough: it takes one delivery, and passes the turn on if it is cancelled.
  if (weave::detail::ListNode* n = waiters_.pop_front()) {
    weave::detail::TaskBase* t = static_cast<Waiter*>(n)->task;
    weave::detail::LoopAccess::wake(*t->loop, t);
  }
}

int SignalSet::take() noexcept {
  int sig = queue_[head_];
  head_ = (head_ + 1) % 64;
  --count_;
  queued_ &= ~bit(sig);
  return sig;
}

std::optional<int> SignalSet::try_wait() noexcept {
  if (count_ == 0) return std::nullopt;
  return take();
}

int SignalSet::wait(SourceLocation where) {
  weave::detail::TaskBase* self =
      weave::detail::LoopAccess::require_fiber("weave::net::SignalSet::wait");
  while (count_ == 0) {
    weave::detail::LoopAccess::checkpoint(self);
    Waiter w(self);
    waiters_.push_back(&w);
    if (!weave::detail::LoopAccess::park(self, where)) {
      if (w.linked()) {
        waiters_.erase(&w);
      } else if (count_ > 0) {
        // Woken for a delivery it will not take: the next waiter gets the turn.
        wake_one();
      }
      weave::detail::LoopAccess::throw_cancelled(self);
    }
  }
  return take();
}

int wait_for_signal(std::initializer_list<int> signals, SourceLocation where) {
  weave::detail::LoopAccess::require_fiber("weave::net::wait_for_signal");
  SignalSet set(signals);
  return set.wait(where);
}

}  // namespace weave::net
