/*
 * fuzz_safetensors.c - libFuzzer harness for the safetensors header parser of
 * `gpt convert --hf` (cli/safetensors.c, through st_parse_memory: the input
 * is a whole safetensors file).
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -Icli \
 *       tests/fuzz/fuzz_safetensors.c cli/safetensors.c cli/json.c cli/common.c \
 *       cli/convert_io.c cli/ckpt.c gpt.c tokenizer.c -o build/fuzz_safetensors -lm -pthread
 *   mkdir -p build/corpus_safetensors
 *   build/fuzz_safetensors build/corpus_safetensors tests/fuzz/seeds/safetensors -max_total_time=300
 *
 * When a header is accepted, what the parser promises is checked: every
 * tensor lies inside the data, holds exactly dtype size x elements bytes, and
 * the tensors tile the data without overlap or hole. A violation calls
 * abort(). Crashes go to tests/fuzz/regressions/safetensors/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

static int by_begin(const void *a, const void *b)
{
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *copy = (unsigned char *)malloc(size ? size : 1);
    st_header h;
    gpt_error err;
    const st_tensor **order;
    uint64_t at = 0;
    size_t i;
    if (!copy) return 0;
    memcpy(copy, data, size);
    err.message[0] = 0;
    if (st_parse_memory(copy, size, "fuzz", &h, &err) != GPT_OK) {
        if (err.message[0] == 0) abort();
        free(copy);
        return 0;
    }
    if (h.data_start + h.data_size != size) abort();
    order = (const st_tensor **)malloc((h.n + 1) * sizeof *order);
    if (!order) abort();
    for (i = 0; i < h.n; i++) {
        const st_tensor *t = &h.tensors[i];
        uint64_t n = 1;
        int d;
        if (t->end > h.data_size || t->begin > t->end) abort();
        for (d = 0; d < t->ndim; d++) n *= t->shape[d];
        if (n != t->numel || t->end - t->begin != n * st_dtype_size(t->dtype)) abort();
        if (!t->name) abort();
        order[i] = t;
    }
    qsort((void *)order, h.n, sizeof *order, by_begin);
    for (i = 0; i < h.n; i++) {
        if (order[i]->begin != at) abort();
        if (order[i]->end > at) at = order[i]->end;
    }
    if (at != h.data_size) abort();
    free((void *)order);
    st_header_free(&h);
    free(copy);
    return 0;
}
