#pragma once
// Everything weave offers.

#include "weave/cancel_scope.hpp"
#include "weave/clock.hpp"
#include "weave/errors.hpp"
#include "weave/executor.hpp"
#include "weave/future.hpp"
#include "weave/handle.hpp"
#include "weave/loop.hpp"
#include "weave/run.hpp"
#include "weave/task.hpp"
#include "weave/this_fiber.hpp"
