#pragma once
// Operations on the calling fiber: yield and sleep.

#include "weave/clock.hpp"
#include "weave/detail/source_location.hpp"

namespace weave::this_fiber {

/// Lets every other ready fiber and callback run, then continues (asyncio.sleep(0)).
///
/// @par Cancellation
/// A checkpoint: throws weave::Cancelled if the task has a pending cancellation.
/// @par Errors
/// std::logic_error if called outside a fiber.
void yield(SourceLocation where = SourceLocation::current());

/// Suspends the calling fiber for `d` of loop time; d <= 0 behaves as yield().
///
/// @par Cancellation
/// A checkpoint: cancelling the task wakes it at once with weave::Cancelled.
/// @par Errors
/// std::logic_error if called outside a fiber.
void sleep_for(Duration d, SourceLocation where = SourceLocation::current());

/// Suspends the calling fiber until loop time `t` (see Loop::time()).
void sleep_until(TimePoint t, SourceLocation where = SourceLocation::current());

/// True if the caller runs inside a weave fiber.
bool in_fiber() noexcept;

}  // namespace weave::this_fiber
