#pragma once
// Everything weave offers.

#include "weave/barrier.hpp"
#include "weave/cancel_scope.hpp"
#include "weave/clock.hpp"
#include "weave/condition.hpp"
#include "weave/errors.hpp"
#include "weave/event.hpp"
#include "weave/executor.hpp"
#include "weave/future.hpp"
#include "weave/handle.hpp"
#include "weave/lock.hpp"
#include "weave/loop.hpp"
#include "weave/queue.hpp"
#include "weave/run.hpp"
#include "weave/semaphore.hpp"
#include "weave/task.hpp"
#include "weave/this_fiber.hpp"
