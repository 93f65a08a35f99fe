# strata CLI (included by src/exe/CMakeLists.txt when strata.cc exists).
if(TARGET strata_cli)
  add_executable(strata ${CMAKE_CURRENT_SOURCE_DIR}/strata.cc)
  target_link_libraries(strata PRIVATE strata_cli)
endif()
