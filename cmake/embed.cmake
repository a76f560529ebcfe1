# reeve_embed(<c-symbol> <input-file> <output.c>): turn a file into a C array
# plus its length, so the binary carries its schemas without install paths.
function(reeve_embed symbol input output)
  add_custom_command(
    OUTPUT ${output}
    COMMAND ${CMAKE_COMMAND} -DSYMBOL=${symbol} -DINPUT=${input} -DOUTPUT=${output}
            -P ${CMAKE_SOURCE_DIR}/cmake/embed_run.cmake
    DEPENDS ${input} ${CMAKE_SOURCE_DIR}/cmake/embed_run.cmake
    VERBATIM)
endfunction()
