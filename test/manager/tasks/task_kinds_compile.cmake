# A worker can hold an in-process task's lease (RunningTasks::enter) only with a kind the
# table of task kinds marks in-process (task_kinds.h): the sweep then always knows it.
# Compiles one snippet that must build and two that must not, and checks the refusal is
# the in-process check's (not some unrelated error).
# cmake -DCXX=... -DROOT=... -DSRC=... -P task_kinds_compile.cmake
function(try_snippet file out_result out_log)
  execute_process(COMMAND ${CXX} -std=c++20 -fsyntax-only -I${ROOT}/include ${SRC}/compile/${file}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  set(${out_result} ${rc} PARENT_SCOPE)
  set(${out_log} "${out}${err}" PARENT_SCOPE)
endfunction()

try_snippet(worker_in_process_kind.cc rc log)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "an in-process kind must compile:\n${log}")
endif()

try_snippet(worker_controller_kind.cc rc log)
if(rc EQUAL 0)
  message(FATAL_ERROR "a worker entered a lease with the controller kind vm.start: compiled")
endif()
if(NOT log MATCHES "not_an_in_process_task_kind")
  message(FATAL_ERROR "refused, but not by the in-process check:\n${log}")
endif()

try_snippet(worker_string_kind.cc rc log)
if(rc EQUAL 0)
  message(FATAL_ERROR "a worker entered a lease with a string kind: compiled")
endif()
if(NOT log MATCHES "InProcessTaskKind")
  message(FATAL_ERROR "refused, but not for want of an InProcessTaskKind:\n${log}")
endif()
message(STATUS "task kinds: in-process leases checked at compile time")
