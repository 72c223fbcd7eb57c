# Runs the flags program where it must fail, and checks that it failed the right way.
#
#   cmake -DPROGRAM=<path> -DARGS=<args separated by spaces> -DEXPECT_RC=<exit status>
#         -DEXPECT_REGEX=<regex over stdout and stderr together> [-DULIMIT_N=<fds>]
#         -P expect_exit.cmake
#
# ULIMIT_N runs the program under `ulimit -n` (through sh) to make it run out of fds.

separate_arguments(args UNIX_COMMAND "${ARGS}")
if(DEFINED ULIMIT_N)
  execute_process(COMMAND sh -c "ulimit -n ${ULIMIT_N} && exec \"$0\" \"$@\"" "${PROGRAM}" ${args}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
else()
  execute_process(COMMAND "${PROGRAM}" ${args}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
endif()
message("---- stdout of ${PROGRAM} ${ARGS}\n${out}---- stderr\n${err}---- exit: ${rc}")
set(problems "")
if(NOT rc STREQUAL "${EXPECT_RC}")
  string(APPEND problems "exited with '${rc}' instead of ${EXPECT_RC}\n")
endif()
if(NOT "${out}${err}" MATCHES "${EXPECT_REGEX}")
  string(APPEND problems "the output does not match the regular expression: ${EXPECT_REGEX}\n")
endif()
if(problems)
  message(FATAL_ERROR "${problems}")
endif()
