# stratad (included by src/exe/CMakeLists.txt when stratad.cc exists).
if(TARGET strata_manager)
  add_executable(stratad ${CMAKE_CURRENT_SOURCE_DIR}/stratad.cc)
  target_link_libraries(stratad PRIVATE strata_manager)
endif()
