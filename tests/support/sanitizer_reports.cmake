# The sanitizer_reports fixture of a SLUICE_SANITIZE build (tests/CMakeLists.txt).
#   cmake -DREPORTS=<dir> -DMODE=clear -P sanitizer_reports.cmake   empty <dir>
#   cmake -DREPORTS=<dir> -DMODE=check -P sanitizer_reports.cmake   print every report in <dir>; fail if any
if(MODE STREQUAL "clear")
  file(REMOVE_RECURSE "${REPORTS}")
  file(MAKE_DIRECTORY "${REPORTS}")
elseif(MODE STREQUAL "check")
  file(GLOB found "${REPORTS}/report.*")
  list(LENGTH found n)
  if(n EQUAL 0)
    message("no sanitizer reports in ${REPORTS}")
    return()
  endif()
  foreach(f ${found})
    file(READ "${f}" text)
    message("==== ${f}\n${text}")
  endforeach()
  message(FATAL_ERROR "${n} sanitizer report(s) in ${REPORTS} (printed above); each names the process id "
                      "in its file name and its stack says which test or `sluice` command it came from")
else()
  message(FATAL_ERROR "MODE must be clear or check")
endif()
