# Runs one program and checks how it ended and what it printed.
#
#   cmake -DPROGRAM=<path> [-DARGS=<args separated by spaces>] [-DEXPECT_REGEX=<regex>]
#         [-DEXPECT_FILE=<file whose text stdout must equal>] -P check_output.cmake
#
# Unlike ctest's PASS_REGULAR_EXPRESSION, which ignores the exit code, this fails when the
# program exits non-zero (a sanitizer report, an uncaught exception) even if the text matched.

if(NOT PROGRAM)
  message(FATAL_ERROR "check_output.cmake: PROGRAM is not set")
endif()
separate_arguments(args UNIX_COMMAND "${ARGS}")
execute_process(COMMAND "${PROGRAM}" ${args}
  RESULT_VARIABLE rc
  OUTPUT_VARIABLE out
  ERROR_VARIABLE err)

# Show what happened in every case: ctest keeps it in the log, and prints it on failure.
message("---- stdout of ${PROGRAM} ${ARGS}\n${out}---- stderr\n${err}---- exit: ${rc}")

set(problems "")
if(NOT rc STREQUAL "0")
  string(APPEND problems "exited with '${rc}' instead of 0\n")
endif()
if(DEFINED EXPECT_REGEX AND NOT out MATCHES "${EXPECT_REGEX}")
  string(APPEND problems "stdout does not match the regular expression: ${EXPECT_REGEX}\n")
endif()
if(DEFINED EXPECT_FILE)
  file(READ "${EXPECT_FILE}" expected)
  if(NOT out STREQUAL expected)
    string(APPEND problems "stdout differs from ${EXPECT_FILE}, which says:\n${expected}")
  endif()
endif()
if(problems)
  message(FATAL_ERROR "${problems}")
endif()
