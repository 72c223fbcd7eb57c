#pragma once
// Queues between fibers: FIFO, LIFO and priority (asyncio.Queue, LifoQueue, PriorityQueue).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "weave/detail/intrusive_list.hpp"
#include "weave/detail/source_location.hpp"
#include "weave/detail/task_base.hpp"
#include "weave/errors.hpp"
#include "weave/loop.hpp"

namespace weave {

/// Thrown by get_nowait() when no item can be taken at once (asyncio.QueueEmpty).
class QueueEmpty : public std::runtime_error {
 public:
  QueueEmpty() : std::runtime_error("weave::QueueEmpty: no item to take without waiting") {}
};

/// Thrown by put_nowait() when no free slot can be used at once (asyncio.QueueFull).
class QueueFull : public std::runtime_error {
 public:
  QueueFull() : std::runtime_error("weave::QueueFull: no free slot without waiting") {}
};

/// Thrown by put() and put_nowait() on a queue that was shut down, and by get() and
/// get_nowait() once such a queue is empty (asyncio.QueueShutDown, Python 3.13).
class QueueShutDown : public std::runtime_error {
 public:
  QueueShutDown() : std::runtime_error("weave::QueueShutDown: the queue was shut down") {}
};

namespace detail {

// One fiber waiting on a queue: lives in the frame of the waiting call, so waiting allocates
// nothing. It is in exactly one of the queue's lists while the queue is alive: a wait list
// (state `waiting`) or, once a waker has chosen it and until it runs, the queue's `woken_` list.
struct QueueWaiter : ListNode {
  enum class State : std::uint8_t { waiting, woken };
  explicit QueueWaiter(TaskBase* t) noexcept : task(t) {}
  TaskBase* task;
  State state = State::waiting;
  // Woken for an item (a getter) or a free slot (a putter) that is held for it until it runs;
  // false when woken by shutdown() or by join's condition.
  bool granted = false;
  // The queue was destroyed: nothing of it may be touched any more.
  bool orphaned = false;
};

// Everything of a queue that does not depend on the item type: the wait lists, the counts, the
// shutdown state and the join counter. The typed layer (BasicQueue) moves the items.
//
// Fairness rests on two invariants, restored by every operation before it returns or suspends:
//   (I1) if a getter is waiting, every item in the queue is granted to a woken getter;
//   (I2) if a putter is waiting, every free slot is granted to a woken putter.
// A newcomer therefore never overtakes a waiter, and a woken waiter always finds what it was
// woken for (unless shutdown(immediate) dropped it). A grant is returned, and handed to the
// next waiter, by a waiter that resumes cancelled.
class QueueCore {
 public:
  explicit QueueCore(std::size_t maxsize) noexcept : maxsize_(maxsize) {}
  QueueCore(const QueueCore&) = delete;
  QueueCore& operator=(const QueueCore&) = delete;

  // Fibers still waiting are detached: the queue never wakes them again, a cancellation ends
  // their wait. Fibers already woken but not yet run find out when they run.
  ~QueueCore() {
    for (IntrusiveList* list : {&getters_, &putters_, &joiners_, &woken_})
      while (ListNode* n = list->pop_front()) static_cast<QueueWaiter*>(n)->orphaned = true;
  }

  std::size_t size() const noexcept { return size_; }
  std::size_t maxsize() const noexcept { return maxsize_; }
  bool full() const noexcept { return maxsize_ > 0 && size_ >= maxsize_; }
  bool is_shutdown() const noexcept { return shutdown_; }
  std::size_t unfinished() const noexcept { return unfinished_; }

  // ---- Getters ---------------------------------------------------------------------------

  // Returns once the calling fiber may take one item at once.
  void acquire_item(const char* what, SourceLocation where) {
    TaskBase* self = enter(what);
    for (;;) {
      if (free_items() > 0) return;
      if (shutdown_) throw QueueShutDown();
      LoopAccess::checkpoint(self);
      QueueWaiter w(self);
      wait(self, getters_, w, Side::getter, where);
      if (w.granted) --promised_items_;
      // A grant guarantees an item unless shutdown(immediate) dropped it; a getter woken by
      // shutdown() takes an item if one is free (a granted getter may have been cancelled),
      // and otherwise the loop throws QueueShutDown.
    }
  }
  void check_item_nowait() const {
    if (free_items() > 0) return;
    if (shutdown_) throw QueueShutDown();
    throw QueueEmpty();
  }
  void taken() noexcept {
    --size_;
    wake_putters();  // a slot was freed (I2)
  }
  void take_failed() noexcept { wake_getters(); }  // the item stayed; it may be due to a waiter

  // ---- Putters ---------------------------------------------------------------------------

  // Returns once the calling fiber may add one item at once.
  void acquire_slot(const char* what, SourceLocation where) {
    TaskBase* self = enter(what);
    for (;;) {
      if (shutdown_) throw QueueShutDown();
      if (free_slots() > 0) return;
      LoopAccess::checkpoint(self);
      QueueWaiter w(self);
      wait(self, putters_, w, Side::putter, where);
      if (w.granted) --promised_slots_;
    }
  }
  void check_slot_nowait() const {
    if (shutdown_) throw QueueShutDown();
    if (free_slots() == 0) throw QueueFull();
  }
  void pushed() noexcept {
    ++size_;
    ++unfinished_;
    wake_getters();  // an item arrived (I1)
  }
  void push_failed() noexcept { wake_putters(); }  // the slot stayed free

  // ---- join, task_done, shutdown -----------------------------------------------------------

  void join(SourceLocation where) {
    TaskBase* self = enter("weave::Queue::join");
    if (unfinished_ == 0) return;
    LoopAccess::checkpoint(self);
    QueueWaiter w(self);
    // Nothing of the queue is touched after this returns: the queue may be gone by then.
    wait(self, joiners_, w, Side::joiner, where);
  }

  void task_done() {
    if (unfinished_ == 0)
      throw std::logic_error(
          "weave::Queue::task_done: called more times than there were items put");
    if (--unfinished_ == 0) wake_all(joiners_);
  }

  // `dropped` items were removed from the store by the typed layer (immediate shutdown).
  void shut_down(bool immediate, std::size_t dropped) noexcept {
    shutdown_ = true;
    if (immediate) {
      size_ -= dropped;
      // Dropped items count as done, as in Python, so that join() does not wait for them.
      unfinished_ -= std::min(dropped, unfinished_);
      if (unfinished_ == 0) wake_all(joiners_);
    }
    // Each woken getter takes an item if one is free and throws QueueShutDown otherwise; each
    // woken putter throws QueueShutDown. Granted waiters keep their grants.
    wake_all(getters_);
    wake_all(putters_);
  }

 private:
  enum class Side : std::uint8_t { getter, putter, joiner };

  // Items not granted to a woken getter. After shutdown(immediate) the grants may outnumber the
  // items until the granted getters have run.
  std::size_t free_items() const noexcept {
    return size_ > promised_items_ ? size_ - promised_items_ : 0;
  }
  // Slots neither used nor granted to a woken putter.
  std::size_t free_slots() const noexcept {
    if (maxsize_ == 0) return std::numeric_limits<std::size_t>::max();
    const std::size_t used = size_ + promised_slots_;
    return used < maxsize_ ? maxsize_ - used : 0;
  }
  bool has_waiters() const noexcept {
    return !getters_.empty() || !putters_.empty() || !joiners_.empty() || !woken_.empty();
  }

  // The calling fiber, after checking that it may use this queue: a queue belongs to the loop
  // of the fibers waiting on it (a queue with no waiter may move to another loop).
  TaskBase* enter(const char* what) {
    TaskBase* self = LoopAccess::require_fiber(what);
    if (self->loop != loop_) [[unlikely]] {
      if (has_waiters())
        throw std::logic_error(std::string(what) +
                               ": the queue is in use by fibers of another loop; a queue belongs "
                               "to the loop whose fibers wait on it");
      loop_ = self->loop;
    }
    return self;
  }

  // Suspends until a waker takes `w` off `list`. On cancellation it leaves the queue, handing
  // on a grant it received, and throws Cancelled.
  void wait(TaskBase* self, IntrusiveList& list, QueueWaiter& w, Side side, SourceLocation where) {
    list.push_back(&w);
    for (;;) {
      const bool not_cancelled = LoopAccess::park(self, where);
      if (w.orphaned) [[unlikely]] {
        // `this` is gone: only `w` and `self` may be used here.
        if (!not_cancelled) LoopAccess::throw_cancelled(self);
        if (w.state == QueueWaiter::State::waiting) continue;  // only cancellation ends it now
        if (side == Side::joiner) return;                      // join's condition was met
        throw std::logic_error(
            "weave::Queue: the queue was destroyed while a fiber it had woken was about to use it");
      }
      if (!not_cancelled) {
        leave(list, w, side);
        LoopAccess::throw_cancelled(self);
      }
      if (w.state == QueueWaiter::State::woken) {
        woken_.erase(&w);
        return;
      }
      // Still in the wait list: the wake-up was not the queue's. Keep waiting in place.
    }
  }

  // A cancelled waiter leaves. If it had been granted an item or a slot, the grant goes back
  // and on to the next waiter of its side: a cancelled waiter never swallows a wake-up.
  void leave(IntrusiveList& list, QueueWaiter& w, Side side) noexcept {
    if (w.state == QueueWaiter::State::waiting) {
      list.erase(&w);
      return;
    }
    woken_.erase(&w);
    if (!w.granted) return;
    if (side == Side::getter) {
      --promised_items_;
      wake_getters();
    } else if (side == Side::putter) {
      --promised_slots_;
      wake_putters();
    }
  }

  // Moves `w` from its wait list to woken_ and schedules its fiber.
  void wake(IntrusiveList& list, QueueWaiter* w, bool granted) noexcept {
    list.erase(w);
    w->state = QueueWaiter::State::woken;
    w->granted = granted;
    woken_.push_back(w);
    // A waiter already made ready by a cancellation is not scheduled twice (wake() is a no-op
    // then); it finds the grant when it runs and hands it on.
    LoopAccess::wake(*w->task->loop, w->task);
  }
  // Grants free items to waiting getters, in the order they came (I1).
  void wake_getters() noexcept {
    while (free_items() > 0 && !getters_.empty()) {
      ++promised_items_;
      wake(getters_, static_cast<QueueWaiter*>(getters_.front()), true);
    }
  }
  // Grants free slots to waiting putters, in the order they came (I2).
  void wake_putters() noexcept {
    while (free_slots() > 0 && !putters_.empty()) {
      ++promised_slots_;
      wake(putters_, static_cast<QueueWaiter*>(putters_.front()), true);
    }
  }
  void wake_all(IntrusiveList& list) noexcept {
    while (!list.empty()) wake(list, static_cast<QueueWaiter*>(list.front()), false);
  }

  std::size_t maxsize_;
  std::size_t size_ = 0;            // items in the store, granted or not
  std::size_t promised_items_ = 0;  // items granted to woken getters that have not run yet
  std::size_t promised_slots_ = 0;  // slots granted to woken putters that have not run yet
  std::size_t unfinished_ = 0;      // items put and not yet marked done
  bool shutdown_ = false;
  Loop* loop_ = nullptr;
  IntrusiveList getters_;
  IntrusiveList putters_;
  IntrusiveList joiners_;
  IntrusiveList woken_;  // chosen by a waker, not yet run
};

// The item stores: how each kind of queue orders its items.
template <class T>
struct FifoStore {
  std::deque<T> items;
  template <class U>
  void push(U&& v) {
    items.push_back(std::forward<U>(v));
  }
  T pop() {
    T v = std::move(items.front());
    items.pop_front();
    return v;
  }
};

template <class T>
struct LifoStore {
  std::vector<T> items;
  template <class U>
  void push(U&& v) {
    items.push_back(std::forward<U>(v));
  }
  T pop() {
    T v = std::move(items.back());
    items.pop_back();
    return v;
  }
};

template <class T, class Compare>
struct HeapStore {
  explicit HeapStore(Compare c) : compare(std::move(c)) {}
  std::vector<T> items;
  Compare compare;
  // std's heap functions keep the greatest element in front; inverting the order keeps the
  // least in front, as Python's heapq does.
  auto heap_order() {
    return [this](const T& a, const T& b) { return compare(b, a); };
  }
  template <class U>
  void push(U&& v) {
    items.push_back(std::forward<U>(v));
    std::push_heap(items.begin(), items.end(), heap_order());
  }
  T pop() {
    std::pop_heap(items.begin(), items.end(), heap_order());
    T v = std::move(items.back());
    items.pop_back();
    return v;
  }
};

template <class Q>
class ConsumeRange;

}  // namespace detail

/// What Queue, LifoQueue and PriorityQueue have in common: a queue of items between the fibers
/// of one loop, bounded (`maxsize > 0`) or not (`maxsize == 0`), with asyncio.Queue's
/// interface and Python 3.13's shutdown. Use it through those three classes.
///
/// **Fairness.** Waiting getters are served in the order they started waiting, and so are
/// waiting putters; a newcomer never overtakes a waiter. When a put wakes a waiting getter, an
/// item is held for that getter until it runs: other gets, get_nowait() included, can take only
/// the items beyond those held, so a woken getter never comes up empty (likewise a slot freed
/// for a waiting putter). Items still leave the queue in its order, in the order the getters
/// run. size() counts held items, so get_nowait() can throw QueueEmpty while size() > 0, for
/// the moment between a put and the turn in which the woken getter runs.
///
/// @par Example
/// @code
/// weave::Queue<Job> jobs(100);                  // at most 100 queued jobs
/// auto worker = weave::spawn([&] {
///   for (Job& job : jobs.consume()) {           // ends when the queue is shut down and empty
///     run(job);
///     jobs.task_done();
///   }
/// });
/// for (Job& job : incoming) jobs.put(std::move(job));  // waits while 100 are queued
/// jobs.join();                                  // every job put has been marked done
/// jobs.shutdown();                              // the worker's loop ends
/// @endcode
///
/// @par Thread safety
/// Loop-affine: use a queue from one loop's thread only (no atomics, no locks). From another
/// thread, post the call: `loop.call_soon_threadsafe([&] { q.put_nowait(v); })`.
///
/// @par Cancellation
/// put(), get() and join() are checkpoints when they have to wait. A cancelled get() takes
/// nothing: the item stays in the queue, for the next getter. A cancelled put() adds nothing and
/// leaves its argument untouched. A waiter that was woken for an item or a slot and is
/// cancelled before it runs hands it on to the next waiter.
///
/// @par Lifetime
/// A queue must outlive its use. Destroying it while fibers wait on it detaches them: only a
/// cancellation (Loop::close() cancels every task) ends their wait; a fiber it had already woken
/// for an item or a slot throws std::logic_error when it runs.
template <class T, class Store>
class BasicQueue {
  static_assert(std::is_object_v<T> && !std::is_const_v<T> && std::is_move_constructible_v<T>,
                "a queue's items are values that can be moved in and out");

 public:
  using value_type = T;

  BasicQueue(const BasicQueue&) = delete;
  BasicQueue& operator=(const BasicQueue&) = delete;

  // ---- Putting -----------------------------------------------------------------------------

  /// Adds `item`, first waiting while the queue is full (asyncio.Queue.put).
  ///
  /// @par Cancellation
  /// A checkpoint when it has to wait. Cancelled, it adds nothing and `item` is not moved
  /// from, so the caller still owns it.
  /// @par Errors
  /// weave::QueueShutDown if the queue is (or while waiting becomes) shut down, `item`
  /// untouched; std::logic_error outside a fiber (even when there is room) or while fibers of
  /// another loop wait on the queue.
  void put(T&& item, SourceLocation where = SourceLocation::current()) {
    put_impl(std::move(item), "weave::Queue::put", where);
  }
  /// Adds a copy of `item`, first waiting while the queue is full.
  void put(const T& item, SourceLocation where = SourceLocation::current()) {
    put_impl(item, "weave::Queue::put", where);
  }

  /// Adds `item` if a slot is free now (asyncio.Queue.put_nowait). Callable from callbacks.
  ///
  /// @par Errors
  /// weave::QueueFull if the queue is full (or its free slots are held for woken putters);
  /// weave::QueueShutDown after shutdown(). `item` is not moved from when it throws.
  void put_nowait(T&& item) { put_nowait_impl(std::move(item)); }
  void put_nowait(const T& item) { put_nowait_impl(item); }

  // ---- Getting -----------------------------------------------------------------------------

  /// Removes and returns the next item (the oldest, newest or least, by queue kind), first
  /// waiting while there is none (asyncio.Queue.get).
  ///
  /// @par Cancellation
  /// A checkpoint when it has to wait. Cancelled, it takes nothing: the item it may have been
  /// woken for stays in the queue and goes to the next getter.
  /// @par Errors
  /// weave::QueueShutDown once the queue is shut down and no item is left for this getter;
  /// std::logic_error outside a fiber (even when an item is there) or while fibers of another
  /// loop wait on the queue.
  T get(SourceLocation where = SourceLocation::current()) {
    core_.acquire_item("weave::Queue::get", where);
    return take();
  }

  /// Removes and returns the next item if one can be taken now (asyncio.Queue.get_nowait).
  /// Callable from callbacks.
  ///
  /// @par Errors
  /// weave::QueueEmpty if there is none (or every item is held for a woken getter);
  /// weave::QueueShutDown if the queue is shut down and empty.
  T get_nowait() {
    core_.check_item_nowait();
    return take();
  }

  /// A range whose iteration calls get() for each element and ends, without an exception, once
  /// the queue is shut down and empty.
  ///
  /// @par Example
  /// @code
  /// for (auto& msg : inbox.consume()) handle(std::move(msg));
  /// @endcode
  /// @par Cancellation
  /// Like get(): each step is a checkpoint when it waits; Cancelled leaves the loop by
  /// exception and the item stays in the queue.
  /// @par Errors
  /// Those of get() other than weave::QueueShutDown, which ends the iteration.
  detail::ConsumeRange<BasicQueue> consume(SourceLocation where = SourceLocation::current()) {
    return detail::ConsumeRange<BasicQueue>(*this, where);
  }

  // ---- State -------------------------------------------------------------------------------

  /// Items in the queue, including any held for a woken getter (asyncio.Queue.qsize).
  std::size_t size() const noexcept { return core_.size(); }
  bool empty() const noexcept { return core_.size() == 0; }
  /// True if the queue is bounded and holds maxsize() items.
  bool full() const noexcept { return core_.full(); }
  /// The bound given at construction; 0: unbounded.
  std::size_t maxsize() const noexcept { return core_.maxsize(); }
  /// True once shutdown() was called.
  bool is_shutdown() const noexcept { return core_.is_shutdown(); }
  /// Items put and not yet marked done with task_done().
  std::size_t unfinished() const noexcept { return core_.unfinished(); }

  // ---- Tracking work -----------------------------------------------------------------------

  /// Marks one item taken from the queue as processed (asyncio.Queue.task_done).
  ///
  /// @par Errors
  /// std::logic_error if called more times than items were put (asyncio's ValueError).
  void task_done() { core_.task_done(); }

  /// Waits until every item put has been marked done with task_done() (asyncio.Queue.join).
  /// Returns at once if none is pending.
  ///
  /// @par Cancellation
  /// A checkpoint when it has to wait; the queue is not affected.
  /// @par Errors
  /// std::logic_error outside a fiber.
  void join(SourceLocation where = SourceLocation::current()) { core_.join(where); }

  // ---- Shutting down -----------------------------------------------------------------------

  /// Shuts the queue down (Python 3.13's Queue.shutdown): put() and put_nowait() throw
  /// weave::QueueShutDown from now on, and every waiting putter is woken with it. Getters
  /// drain the remaining items, then get weave::QueueShutDown; waiting getters for whom no
  /// item is left are woken with it.
  ///
  /// With `immediate`, the items still queued are dropped (destroyed now) and counted as done
  /// for join(), so get() throws at once; getters that were woken for a dropped item throw too.
  /// Idempotent; an immediate shutdown may follow a normal one.
  void shutdown(bool immediate = false) {
    std::size_t dropped = 0;
    if (immediate) {
      dropped = store_.items.size();
      store_.items.clear();
    }
    core_.shut_down(immediate, dropped);
  }

 protected:
  explicit BasicQueue(std::size_t maxsize, Store store = Store())
      : store_(std::move(store)), core_(maxsize) {}
  ~BasicQueue() = default;

 private:
  template <class U>
  void put_impl(U&& item, const char* what, SourceLocation where) {
    core_.acquire_slot(what, where);
    push(std::forward<U>(item));
  }
  template <class U>
  void put_nowait_impl(U&& item) {
    core_.check_slot_nowait();
    push(std::forward<U>(item));
  }
  template <class U>
  void push(U&& item) {
    try {
      store_.push(std::forward<U>(item));
    } catch (...) {
      core_.push_failed();  // the slot is still free: it may be due to a waiting putter
      throw;
    }
    core_.pushed();
  }
  T take() {
    T item = pop();
    core_.taken();
    return item;
  }
  T pop() {
    try {
      return store_.pop();
    } catch (...) {
      core_.take_failed();
      throw;
    }
  }

  Store store_;
  // After store_: destroyed first, so waiters are detached before the items go.
  detail::QueueCore core_;
};

/// A first-in, first-out queue of T between fibers (asyncio.Queue). See BasicQueue for the
/// operations, fairness, cancellation and shutdown.
///
/// @par Example
/// @code
/// weave::Queue<std::string> lines(16);
/// auto reader = weave::spawn([&] { for (auto& l : lines.consume()) std::puts(l.c_str()); });
/// lines.put("hello");
/// lines.shutdown();
/// reader.get();
/// @endcode
template <class T>
class Queue : public BasicQueue<T, detail::FifoStore<T>> {
 public:
  /// A queue holding at most `maxsize` items; 0: unbounded.
  explicit Queue(std::size_t maxsize = 0) : BasicQueue<T, detail::FifoStore<T>>(maxsize) {}
};

/// A last-in, first-out queue (a stack) of T between fibers (asyncio.LifoQueue): get() returns
/// the item put most recently. See BasicQueue.
template <class T>
class LifoQueue : public BasicQueue<T, detail::LifoStore<T>> {
 public:
  /// A queue holding at most `maxsize` items; 0: unbounded.
  explicit LifoQueue(std::size_t maxsize = 0) : BasicQueue<T, detail::LifoStore<T>>(maxsize) {}
};

/// A priority queue of T between fibers (asyncio.PriorityQueue): get() returns the least item
/// by `Compare` (std::less: the smallest first, like Python's heapq). The order among equal
/// items is unspecified; to keep equal priorities first-in, first-out, queue a (priority,
/// sequence number, value) tuple. See BasicQueue.
///
/// @par Example
/// @code
/// weave::PriorityQueue<std::pair<int, std::string>> work;
/// work.put_nowait({2, "later"});
/// work.put_nowait({1, "first"});
/// work.get_nowait();  // {1, "first"}
/// @endcode
template <class T, class Compare = std::less<T>>
class PriorityQueue : public BasicQueue<T, detail::HeapStore<T, Compare>> {
 public:
  /// A queue holding at most `maxsize` items (0: unbounded), ordered by `compare`.
  explicit PriorityQueue(std::size_t maxsize = 0, Compare compare = Compare())
      : BasicQueue<T, detail::HeapStore<T, Compare>>(
            maxsize, detail::HeapStore<T, Compare>(std::move(compare))) {}
};

namespace detail {

// What BasicQueue::consume() returns: an input range over the items got from the queue. The
// current item lives in the range (which the range-for keeps alive), so the loop variable can
// be a reference and move-only items work.
template <class Q>
class ConsumeRange {
 public:
  using value_type = typename Q::value_type;

  class iterator {
   public:
    using value_type = typename Q::value_type;
    using difference_type = std::ptrdiff_t;
    using reference = value_type&;
    using iterator_concept = std::input_iterator_tag;

    iterator() noexcept = default;
    reference operator*() const noexcept { return *range_->current_; }
    value_type* operator->() const noexcept { return &*range_->current_; }
    iterator& operator++() {
      range_->next();
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, std::default_sentinel_t) noexcept {
      return it.at_end();
    }

   private:
    friend class ConsumeRange;
    explicit iterator(ConsumeRange* r) noexcept : range_(r) {}
    bool at_end() const noexcept { return !range_->current_; }
    ConsumeRange* range_ = nullptr;
  };

  ConsumeRange(Q& queue, SourceLocation where) noexcept : queue_(&queue), where_(where) {}
  ConsumeRange(const ConsumeRange&) = delete;
  ConsumeRange& operator=(const ConsumeRange&) = delete;

  /// Waits for the first item.
  iterator begin() {
    next();
    return iterator(this);
  }
  std::default_sentinel_t end() const noexcept { return {}; }

 private:
  void next() {
    // The previous item is destroyed before waiting, not kept alive for the whole wait.
    current_.reset();
    try {
      current_.emplace(queue_->get(where_));
    } catch (const QueueShutDown&) {
      // The end of the iteration: current_ stays empty.
    }
  }

  Q* queue_;
  SourceLocation where_;
  std::optional<value_type> current_;
};

}  // namespace detail
}  // namespace weave
