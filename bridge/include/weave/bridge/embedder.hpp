#pragma once
// weave::bridge::Embedder: how an outer event loop that drives a weave loop (Loop::run_nowait)
// learns that bridged completions made work ready while the weave loop was not running.

#include "weave/loop.hpp"

namespace weave::bridge {

/// Base of an outer event loop that drives a weave Loop on the same thread through the
/// embedding calls of Loop (native_handle, run_nowait, poll_timeout); weave::AsioDriver is one.
///
/// Why it exists: a completion that arrives on the loop's thread while the loop is *not*
/// running (from one of the outer loop's own callbacks, such as an Asio handler) makes a fiber
/// ready without touching native_handle(), so the outer loop would not know that a turn is
/// due. The embedder therefore hooks the loop (detail::LoopAccess::set_outside_work_hook):
/// whatever is scheduled or a timer armed while the loop is not running calls request_turn().
/// Bridge completions also call Embedder::notify(), which may run the turn at once.
///
/// @par Thread safety
/// Loop-affine: construct, destroy and notify on the loop's thread. The loop must outlive its
/// embedder (the destructor unhooks it).
class Embedder {
 public:
  /// Registers this embedder for `loop` (one per loop).
  /// @par Errors
  /// std::logic_error if `loop` already has an embedder.
  explicit Embedder(Loop& loop);
  Embedder(const Embedder&) = delete;
  Embedder& operator=(const Embedder&) = delete;
  /// Unregisters it.
  virtual ~Embedder();

  Loop& loop() const noexcept { return *loop_; }

  /// Asks the outer loop to run a turn of the weave loop soon (it must not run the turn inside
  /// this call: the caller may be deep inside a callback of some library).
  virtual void request_turn() noexcept = 0;
  /// Runs a turn of the weave loop now, inside this call. Only for callers that know they run
  /// at the top of one of the outer loop's own callbacks (an Asio handler, which Asio never
  /// calls from inside another operation), where a turn is as safe as anywhere. The default
  /// asks for a turn instead.
  virtual void run_turn_now() noexcept { request_turn(); }
  /// Same caller as run_turn_now(), which has just completed what the suspended task `t` waits
  /// for: runs `t` at once if the loop allows it (detail::LoopAccess::run_woken: idle, nothing
  /// else ready) and returns true; returns false if the task must be woken and a turn asked for
  /// the ordinary way. The default returns false.
  virtual bool resume_now(weave::detail::TaskBase* t) noexcept {
    (void)t;
    return false;
  }

  /// If `loop` is embedded and not running, asks its embedder for a turn; otherwise does
  /// nothing. Bridge completions call it. Work that weave's own calls make ready (setting a
  /// weave::Event in an Asio handler, say) needs no call: the loop's hook asks for the turn.
  /// `top_level`: the caller is at the top of an outer loop's callback (see run_turn_now).
  static void notify(Loop& loop, bool top_level = false) noexcept;
  /// The embedder registered for `loop` on this thread, or nullptr.
  static Embedder* of(const Loop& loop) noexcept;

 private:
  Loop* loop_;
  Embedder* next_ = nullptr;  // this thread's embedders (rarely more than one)
};

}  // namespace weave::bridge
