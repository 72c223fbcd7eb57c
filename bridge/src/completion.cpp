// The completion state: who wins the race between completing and suspending, and how the
// waiting fiber is resumed from any thread.
//
// The race between a completion on another thread and the fiber that is about to suspend is
// resolved by where wake-ups happen, not by a lock:
//
//   fiber (loop thread)                       completer (any other thread)
//   1. initiates the call (gives the handle)
//   2. status == Ready? -> take it, no park   a. Pending -> Setting (CAS; one winner)
//   3. waiting_ = true; park()                b. writes the value; status = Ready (release)
//                                             c. posts the state to the loop's inbox
//   4. the loop runs the posted state: waiting_ ? wake(fiber) : nothing
//
// The post (c) is only ever *run* on the loop's thread (4), and the fiber runs on that same
// thread. So when (4) runs, the fiber is either parked in step 3 (waiting_ is set: it is woken)
// or it saw Ready in step 2 and went on (waiting_ is clear: the wake-up is dropped, and it cannot
// wake the fiber out of some later, unrelated wait). A completion that lands between step 2 and
// step 3 is not lost: its wake-up is queued and runs only after the fiber has parked. A
// completion on the loop's own thread cannot interleave with steps 2-3 at all, and wakes the
// fiber directly when it is parked.
//
// Cancellation: the fiber resumes with a cancellation and tries Pending -> Abandoned. If that
// wins, every later completion fails its Pending -> Setting and is a no-op (the late completion
// of the contract). If a completer won first (Setting or Ready), the outcome is already on its
// way: the fiber takes it, and the cancellation stays pending for the fiber's next checkpoint.
// An outcome that arrived is never dropped.

#include "weave/bridge/completion.hpp"

#include <cstdlib>
#include <future>
#include <stdexcept>

#include "weave/bridge/embedder.hpp"

namespace weave::bridge::detail {

using weave::detail::LoopAccess;
using weave::detail::TaskState;

namespace {

constexpr std::size_t kClassBytes = 64;
constexpr std::size_t kClasses = 8;  // blocks up to 512 bytes are cached
constexpr std::size_t kCachedPerClass = 1024;

struct FreeBlock {
  FreeBlock* next;
};

// Trivially destructible, so it can still be read while the thread's other thread_locals are
// being destroyed (a completion handle may die in one of them).
thread_local bool tl_cache_gone = false;

struct StateCache {
  FreeBlock* head[kClasses] = {};
  std::size_t count[kClasses] = {};
  ~StateCache() {
    tl_cache_gone = true;
    for (std::size_t c = 0; c < kClasses; ++c)
      while (FreeBlock* b = head[c]) {
        head[c] = b->next;
        ::operator delete(b);
      }
  }
};
thread_local StateCache tl_cache;

}  // namespace

void* allocate_state(std::size_t size) {
  const std::size_t c = (size - 1) / kClassBytes;
  if (c >= kClasses || tl_cache_gone) return ::operator new(size);
  StateCache& cache = tl_cache;
  if (FreeBlock* b = cache.head[c]) {
    cache.head[c] = b->next;
    --cache.count[c];
    return b;
  }
  return ::operator new((c + 1) * kClassBytes);
}

void free_state(void* p, std::size_t size) noexcept {
  const std::size_t c = (size - 1) / kClassBytes;
  if (c < kClasses && !tl_cache_gone) {
    StateCache& cache = tl_cache;
    if (cache.count[c] < kCachedPerClass) {
      auto* b = static_cast<FreeBlock*>(p);
      b->next = cache.head[c];
      cache.head[c] = b;
      ++cache.count[c];
      return;
    }
  }
  ::operator delete(p);
}

StateBase::StateBase(Loop& loop, void (*on_cancel)(StateBase*))
    : loop_(&loop), inbox_(LoopAccess::inbox(loop)), on_cancel_(on_cancel) {
  // The inbox, not the loop, is what a completion on another thread touches; it is
  // reference-counted so that a completion arriving after the loop was destroyed finds it
  // closed instead of freed.
  inbox_->retain();
  invoke = &StateBase::on_posted;
}

StateBase::~StateBase() { inbox_->release(); }

void StateBase::called_twice() {
  throw std::logic_error(
      "weave::bridge: a completion handle was called a second time; it is one-shot (the first "
      "call's outcome stands)");
}

void StateBase::drop_handle() noexcept {
  if (handles_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  // The last handle: nobody can call any more. If nobody did, break the promise, so that the
  // waiter is told instead of waiting for ever.
  if (!called_.load(std::memory_order_acquire) && begin_complete())
    complete_with(std::make_exception_ptr(std::future_error(std::future_errc::broken_promise)),
                  /*broken=*/true);
  release();  // the handles' reference
}

void StateBase::complete_with(std::exception_ptr e, bool broken) noexcept {
  error_ = std::move(e);
  broken_ = broken;
  end_complete();
}

void StateBase::end_complete() noexcept {
  status_.store(Status::Ready, std::memory_order_release);
  if (inbox_->owned_by_this_thread()) {
    resume_waiter();
    return;
  }
  // Another thread: the wake-up is posted to the loop (see the top of this file). The posted
  // node is this state itself, kept alive by a reference until the loop has run or dropped it:
  // no allocation.
  retain();
  if (!inbox_->post(this)) release();  // the loop is closed: nobody can be waiting any more
}

void StateBase::on_posted(weave::detail::Runnable* r, bool run) {
  auto* s = static_cast<StateBase*>(r);
  if (run) s->resume_waiter();
  s->release();
}

void StateBase::resume_waiter() noexcept {
  // Not parked in wait(): the fiber saw the outcome itself (a completion inside the initiating
  // call), or it has left. A closed loop's fibers are gone or abandoned; its inbox says so.
  if (!waiting_ || inbox_->closed()) return;
  if (waiter_->state != TaskState::Suspended) return;  // ready already (woken by a cancel)
  // From the top of an outer loop's callback (an Asio handler) on an idle embedded loop: run the
  // fiber right here, as spawn's handlers do, instead of readying it and running a turn.
  if (top_level_)
    if (Embedder* e = Embedder::of(*loop_); e && e->resume_now(waiter_)) return;
  // Waking it while the weave loop is not running (from an outer loop's callback) asks the
  // embedder for a turn through the loop's hook; from the top of such a callback the turn may
  // run right here instead.
  LoopAccess::wake(*loop_, waiter_);
  if (top_level_) Embedder::notify(*loop_, true);
}

void StateBase::wait(weave::detail::TaskBase* self, SourceLocation where) {
  if (ready()) return;  // completed inside the initiating call: no suspension at all
  waiter_ = self;
  waiting_ = true;
  for (;;) {
    const bool cancelled = !LoopAccess::park(self, where);
    if (ready())
      break;  // an outcome that arrived wins; a cancellation waits for the next checkpoint
    if (!cancelled) continue;
    if (on_cancel_) {
      // The operation can be told to stop, and may still be using the fiber's memory: ask once,
      // then wait for its outcome (which says whether it stopped or finished first).
      if (!cancel_asked_) {
        cancel_asked_ = true;
        on_cancel_(this);
        // An operation may complete right inside its cancellation handler (a custom one that
        // does not post its completion): the outcome is then here, and nothing will wake us.
        if (ready()) break;
      }
      continue;
    }
    auto expected = Status::Pending;
    if (status_.compare_exchange_strong(expected, Status::Abandoned, std::memory_order_acq_rel)) {
      waiting_ = false;
      LoopAccess::throw_cancelled(self);
    }
    // A completer on another thread claimed the state first (Setting) and is writing the
    // outcome; its wake-up is on the way. Waiting for it is short, and keeps the outcome.
  }
  waiting_ = false;
}

}  // namespace weave::bridge::detail
