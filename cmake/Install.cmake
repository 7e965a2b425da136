# Installation (cmake --install build --prefix P) and the exported CMake package.
#
#   P/bin/strata                         the program (finds P/share/strata itself: relocatable)
#   P/share/strata/configs/              run, model and cluster configs
#   P/share/strata/tokenizers/           tokenizer files, when scripts/fetch-tokenizers.sh ran
#   P/include/strata/                    public headers, with the generated strata/config.hpp
#   P/lib/libstrata_<module>.a           one static library per module
#   P/lib/cmake/strata/                  strataConfig.cmake: find_package(strata) gives the
#                                        targets strata::core ... strata::train
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)
set(STRATA_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/strata)

get_property(_modules GLOBAL PROPERTY STRATA_MODULES)
install(TARGETS ${_modules} strata_warnings EXPORT strataTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
set_target_properties(strata_warnings PROPERTIES EXPORT_NAME warnings)
install(TARGETS strata RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/strata DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${CMAKE_BINARY_DIR}/generated/strata/config.hpp DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/strata)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/configs/ DESTINATION ${CMAKE_INSTALL_DATADIR}/strata/configs)
# Tokenizer files are fetched after configuring (scripts/fetch-tokenizers.sh): copied when present.
install(CODE "
  if(EXISTS \"${PROJECT_SOURCE_DIR}/.cache/tokenizers\")
    file(INSTALL \"${PROJECT_SOURCE_DIR}/.cache/tokenizers/\"
         DESTINATION \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_DATADIR}/strata/tokenizers\")
  endif()")

install(EXPORT strataTargets NAMESPACE strata:: DESTINATION ${STRATA_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/strataConfig.cmake.in
                              ${CMAKE_BINARY_DIR}/generated/strataConfig.cmake INSTALL_DESTINATION ${STRATA_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_BINARY_DIR}/generated/strataConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/generated/strataConfig.cmake ${CMAKE_BINARY_DIR}/generated/strataConfigVersion.cmake
        DESTINATION ${STRATA_CMAKE_DIR})
