/* Model description parser: defaults, overrides, every kind of error message (one sentence naming the
 * JSON path, the value and what was expected), byte sizes, the canonical JSON round trip, and that
 * docs/model-json.md documents every field of the schema.
 * usage: test_spec REPO_ROOT */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "spec_internal.h"

static char root[1024] = ".";

static int parse(const char *json, const char *const *sets, int nsets, gen_spec *s, gen_errors *e) {
    return gen_spec_parse_text(json, strlen(json), "m.json", root, sets, nsets, s, e);
}

static void test_defaults(void) {
    gen_spec s;
    gen_errors e;
    CHECK_EQ_I64(parse("{}", NULL, 0, &s, &e), 0);
    CHECK_EQ_I64(s.backbone.dim, 768);
    CHECK_EQ_I64(s.backbone.depth, 12);
    CHECK_EQ_I64(s.backbone.heads, 12);
    CHECK_EQ_I64(s.backbone.mlp_dim, 3072);
    CHECK(s.backbone.ln_eps == 1e-12);
    CHECK_EQ_I64(s.n_v, 197);
    CHECK_EQ_I64(s.n_a, 49);
    CHECK_EQ_I64(s.patch_rows_a, 6);
    CHECK_EQ_I64(s.patch_cols_a, 8);
    CHECK_EQ_I64(s.fbank_frames, 98);
    CHECK_EQ_I64(s.pairs, 32);
    CHECK_EQ_I64(s.head_dim, 64);
    CHECK(s.fusion == FUSION_LAVISH && s.has_adapters && s.use_v && s.use_a);
    CHECK_EQ_I64(s.n_adapted_layers, 12);
    CHECK(s.adapter.attn && s.adapter.mlp && s.adapter.batchnorm);
    CHECK_EQ_I64(s.adapter.latent_tokens, 2);
    CHECK_EQ_I64(s.adapter.reduction, 8);
    CHECK_EQ_I64(s.adapter.groups, 2);
    CHECK_EQ_I64(s.head.hidden, 512);
    CHECK_EQ_I64(s.head.classes, 51);
    CHECK(s.train.lr == 5e-5 && s.train.head_lr == 4e-6 && s.train.beta1 == 0.9 && s.train.beta2 == 0.999);
    CHECK(s.train.eps == 1e-8 && s.train.weight_decay == 0 && s.train.optimizer == OPT_ADAM);
    CHECK(s.audio.norm_mean == -4.1426 && s.audio.norm_std == 3.2001);
    CHECK(s.video.mean[0] == 0.5 && s.video.std[2] == 0.5);
    CHECK(s.precision == PREC_BF16 && s.memory.recompute == RECOMPUTE_NONE);
    CHECK_EQ_I64(s.memory.budget, 78LL << 30);
    CHECK(!strcmp(s.name, "m"));
    CHECK(s.backbone.weights[0] == 0);
}

static void test_overrides(void) {
    gen_spec s;
    gen_errors e;
    const char *sets[] = {"train.batch=8", "adapter.layers=[1,2]", "fusion=lavish", "memory.budget=512MiB",
                          "backbone.weights=null", "name=sweep-8", "train.betas=[0.8, 0.99]", "video.frames=16"};
    CHECK_EQ_I64(parse("{\"backbone\": {\"weights\": null}}", sets, 8, &s, &e), 0);
    CHECK_EQ_I64(s.train.batch, 8);
    CHECK_EQ_I64(s.pairs, 128);
    CHECK(!s.adapter.on_layer[0] && s.adapter.on_layer[1] && s.adapter.on_layer[2] && !s.adapter.on_layer[3]);
    CHECK_EQ_I64(s.n_adapted_layers, 2);
    CHECK_EQ_I64(s.memory.budget, 512LL << 20);
    CHECK(!strcmp(s.name, "sweep-8"));
    CHECK(s.train.beta1 == 0.8 && s.train.beta2 == 0.99);
    /* A value that is not JSON is a string; the later override wins. */
    const char *sets2[] = {"fusion=vision", "fusion=late", "precision=fp32"};
    CHECK_EQ_I64(parse("{}", sets2, 3, &s, &e), 0);
    CHECK(s.fusion == FUSION_LATE && !s.has_adapters && s.precision == PREC_FP32);
    /* An override creates a missing section. */
    const char *sets3[] = {"memory.recompute=block"};
    CHECK_EQ_I64(parse("{\"train\": {}}", sets3, 1, &s, &e), 0);
    CHECK(s.memory.recompute == RECOMPUTE_BLOCK);
}

typedef struct {
    const char *json;
    const char *set;       /* one override or NULL */
    int nerr;              /* expected number of errors */
    const char *want[3];   /* substrings of the first message */
} bad_case;

static const bad_case k_bad[] = {
    {"{\"train\": {\"batch\": 4,}}", NULL, 1, {"m.json:1:23: invalid JSON"}},
    {"{\"train\": {\"batch\": 4}", NULL, 1, {"m.json:1:", "invalid JSON", "unexpected end"}},
    {"{} x", NULL, 1, {"m.json:1:4: invalid JSON"}},
    {"// comment\n{}", NULL, 1, {"m.json:1:1: invalid JSON"}},
    {"", NULL, 1, {"invalid JSON"}},
    {"null", NULL, 1, {"invalid JSON", "expected a JSON object"}},
    {"[1, 2]", NULL, 1, {"the description is an array", "expected a JSON object"}},
    {"{\"trian\": {}}", NULL, 1, {"trian is not a known field", "did you mean train?"}},
    {"{\"train\": {\"bacth\": 4}}", NULL, 1, {"train.bacth is not a known field", "did you mean train.batch?"}},
    {"{\"batch\": 4}", NULL, 1, {"batch is not a known field", "did you mean train.batch?"}},
    {"{\"train\": {\"zzzzzz\": 4}}", NULL, 1, {"train.zzzzzz is not a known field", "docs/model-json.md"}},
    {"{\"backbone\": 5}", NULL, 1, {"backbone = 5 has the wrong type", "expected an object"}},
    {"{\"train\": {\"batch\": \"4\"}}", NULL, 1, {"train.batch = \"4\" has the wrong type", "expected an integer from 1 to 65536"}},
    {"{\"train\": {\"batch\": 2.5}}", NULL, 1, {"train.batch = 2.5 has the wrong type"}},
    {"{\"train\": {\"batch\": 0}}", NULL, 1, {"train.batch = 0 is out of range", "expected an integer from 1 to 65536"}},
    {"{\"train\": {\"batch\": 99999999999999999999}}", NULL, 1, {"train.batch", "out of range"}},
    {"{\"train\": {\"seed\": 99999999999999999999999}}", NULL, 1, {"train.seed = 18446744073709551615 (or beyond) is out of range"}},
    {"{\"train\": {\"lr\": null}}", NULL, 1, {"train.lr = null has the wrong type", "leave the field out"}},
    {"{\"train\": {\"lr\": 0}}", NULL, 1, {"train.lr = 0 is out of range", "a number > 0"}},
    {"{\"train\": {\"betas\": [0.9, 1.0]}}", NULL, 1, {"train.betas[1] = 1.0 is out of range", "< 1"}},
    {"{\"train\": {\"optimizer\": \"sgd\"}}", NULL, 1, {"train.optimizer = \"sgd\" is not one of \"adam\", \"adamw\""}},
    {"{\"fusion\": \"lavsh\"}", NULL, 1, {"fusion = \"lavsh\" is not one of", "did you mean \"lavish\"?"}},
    {"{\"precision\": 16}", NULL, 1, {"precision = 16 has the wrong type", "\"fp32\", \"bf16\""}},
    {"{\"backbone\": {\"heads\": 5}}", NULL, 1, {"backbone.dim = 768 is not divisible by backbone.heads = 5"}},
    {"{\"backbone\": {\"image_size\": 230}, \"video\": {\"size\": 230}}", NULL, 1,
     {"backbone.image_size = 230 is not a multiple of backbone.patch_size = 16"}},
    {"{\"video\": {\"size\": 256}}", NULL, 1, {"video.size = 256 differs from backbone.image_size = 224"}},
    {"{\"backbone\": {\"channels\": 1}}", NULL, 1, {"backbone.channels = 1 is out of range", "the integer 3"}},
    {"{\"adapter\": {\"reduction\": 7}}", NULL, 1, {"adapter.reduction = 7 does not divide backbone.dim = 768"}},
    {"{\"adapter\": {\"groups\": 5}}", NULL, 1, {"adapter.groups = 5 does not divide"}},
    {"{\"adapter\": {\"layers\": [0, 12]}}", NULL, 1, {"adapter.layers names layer 12", "0 to 11"}},
    {"{\"adapter\": {\"layers\": [1, 1]}}", NULL, 1, {"adapter.layers[1] = 1 is listed twice"}},
    {"{\"adapter\": {\"layers\": [-1]}}", NULL, 1, {"adapter.layers[0] = -1 is not a layer index"}},
    {"{\"adapter\": {\"layers\": []}}", NULL, 1, {"adapter.layers = [] names no layer"}},
    {"{\"adapter\": {\"layers\": \"some\"}}", NULL, 1, {"adapter.layers = \"some\" has the wrong type", "\"all\""}},
    {"{\"adapter\": {\"sublayers\": [\"attn\", \"ffn\"]}}", NULL, 1, {"adapter.sublayers[1] = \"ffn\" is not a sub-layer"}},
    {"{\"adapter\": {\"sublayers\": []}}", NULL, 1, {"adapter.sublayers = [] has the wrong type"}},
    {"{\"adapter\": {\"batchnorm\": 1}}", NULL, 1, {"adapter.batchnorm = 1 has the wrong type", "true or false"}},
    {"{\"head\": {\"classes\": 1}}", NULL, 1, {"head.classes = 1 is out of range", "from 2 to"}},
    {"{\"audio\": {\"mel_bins\": 8}}", NULL, 1, {"audio image", "smaller than one 16 x 16 patch"}},
    {"{\"audio\": {\"target_frames\": 90}}", NULL, 1, {"audio.target_frames = 90 is smaller than the 98 fbank rows"}},
    {"{\"audio\": {\"sample_rate\": 16050}}", NULL, 1, {"audio.sample_rate = 16050 is not a multiple of 100"}},
    {"{\"video\": {\"mean\": [0.5, 0.5]}}", NULL, 1, {"video.mean = [0.5,0.5] has the wrong type", "3 numbers"}},
    {"{\"video\": {\"std\": [0.5, 0, 0.5]}}", NULL, 1, {"video.std[1] = 0 is out of range"}},
    {"{\"memory\": {\"budget\": \"80GB!\"}}", NULL, 1, {"memory.budget = \"80GB!\" is not a memory size", "\"80GiB\""}},
    {"{\"memory\": {\"budget\": 0}}", NULL, 1, {"memory.budget = 0 is not a memory size"}},
    {"{\"backbone\": {\"weights\": \"no/such.safetensors\"}}", NULL, 1,
     {"backbone.weights = \"no/such.safetensors\" cannot be read", "No such file", "expected a readable safetensors file"}},
    {"{\"backbone\": {\"weights\": \"\"}}", NULL, 1, {"backbone.weights = \"\" has the wrong type"}},
    {"{\"name\": \"a b\"}", NULL, 1, {"name = \"a b\" is not a usable name"}},
    {"{\"train\": {\"batch\": 65536}, \"video\": {\"frames\": 4096}}", NULL, 1, {"far too large to plan"}},
    {"{}", "train.bacth=4", 1, {"--set train.bacth=4: train.bacth is not a known field", "did you mean train.batch?"}},
    {"{}", "=4", 1, {"--set =4: expected path.to.field=value"}},
    {"{}", "train.batch", 1, {"--set train.batch: expected path.to.field=value"}},
    {"{}", "train batch=4", 1, {"is not a field path"}},
    {"{}", "train.batch=abc", 1, {"m.json (--set train.batch=abc): train.batch = \"abc\" has the wrong type"}},
    {"{\"train\": {\"batch\": 4, \"lr\": 0.1,\n \"batch\": 8}}", NULL, 1,
     {"m.json:2: the key \"batch\" is given twice in one object", "expected each key once"}},
    {"{\"name\": \"a\", \"train\": {\"name\": 1}, \"memory\": {\"x\": {\"name\": 2}}, \"video\": [{\"name\": 3}]}", NULL,
     3, {"train.name is not a known field"}}, /* the same key in different objects is no duplicate */
    {"{\"name\": \"tiny\\u0000lavish\"}", NULL, 1, {"name holds a NUL character", "expected text without one"}},
    {"{\"fusion\": \"lavish\\u0000x\"}", NULL, 1, {"fusion holds a NUL character"}},
    {"{\"train\": 3}", "train.batch=4", 1, {"--set train.batch=4: train is not an object"}},
    {"{\"train\": {\"batch\": 0, \"lr\": -1}}", NULL, 2, {"train.batch = 0 is out of range"}},
};

static void test_errors(void) {
    for (size_t i = 0; i < sizeof k_bad / sizeof k_bad[0]; i++) {
        const bad_case *c = &k_bad[i];
        gen_spec s;
        gen_errors e;
        const char *sets[1] = {c->set};
        int n = parse(c->json, sets, c->set ? 1 : 0, &s, &e);
        CHECK_MSG(n == c->nerr, "case %zu (%s): %d errors, expected %d; first: %s", i, c->json, n, c->nerr,
                  n ? e.msg[0] : "-");
        if (n == 0) continue;
        for (int k = 0; k < 3 && c->want[k]; k++) CHECK_STR_CONTAINS(e.msg[0], c->want[k]);
        for (int k = 0; k < n; k++) {
            size_t l = strlen(e.msg[k]);
            CHECK_MSG(l > 0 && !strchr(e.msg[k], '\n'), "case %zu: message is not one line: %s", i, e.msg[k]);
            CHECK_MSG(l > 0 && (e.msg[k][l - 1] == '.' || e.msg[k][l - 1] == '?'), "case %zu: message is not a sentence: %s",
                      i, e.msg[k]);
        }
    }
}

static void test_bytes(void) {
    int64_t b;
    CHECK(gen_parse_bytes("80GiB", &b) == 0 && b == 80LL << 30);
    CHECK(gen_parse_bytes("512 MiB", &b) == 0 && b == 512LL << 20);
    CHECK(gen_parse_bytes("1.5GB", &b) == 0 && b == 1500000000LL);
    CHECK(gen_parse_bytes("1e9", &b) == 0 && b == 1000000000LL);
    CHECK(gen_parse_bytes("4096", &b) == 0 && b == 4096);
    CHECK(gen_parse_bytes("", &b) != 0);
    CHECK(gen_parse_bytes("GiB", &b) != 0);
    CHECK(gen_parse_bytes("-1GiB", &b) != 0);
    CHECK(gen_parse_bytes("10 XB", &b) != 0);
    CHECK(gen_parse_bytes("1e30", &b) != 0);
    char buf[32];
    gen_format_bytes(80LL << 30, buf, sizeof buf);
    CHECK(!strcmp(buf, "80.00 GiB"));
}


static void test_round_trip(void) {
    static const char *const models[] = {"lavish-vitb16-ucf51", "late-vitb16-ucf51", "vision-vitb16-ucf51",
                                         "audio-vitb16-ucf51", "tiny-lavish", "tiny-late", "tiny-vision", "tiny-audio"};
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/models/%s.json", root, models[i]);
        gen_spec s, s2;
        gen_errors e;
        int n = gen_spec_load(path, NULL, 0, &s, &e);
        CHECK_MSG(n == 0, "%s: %s", path, n ? e.msg[0] : "");
        if (n) continue;
        CHECK_MSG(!strcmp(s.name, models[i]), "%s: name %s", path, s.name);
        char *j = gen_spec_to_json(&s);
        CHECK(gen_spec_parse_text(j, strlen(j), "canonical", root, NULL, 0, &s2, &e) == 0);
        char *j2 = gen_spec_to_json(&s2);
        CHECK_MSG(!strcmp(j, j2), "%s: canonical JSON does not round-trip", models[i]);
        free(j);
        free(j2);
    }
    /* Loading a file that does not exist, or a folder. */
    gen_spec s;
    gen_errors e;
    CHECK(gen_spec_load("/nonexistent/x.json", NULL, 0, &s, &e) == 1);
    CHECK_STR_CONTAINS(e.msg[0], "cannot open the model description");
    CHECK(gen_spec_load(root, NULL, 0, &s, &e) == 1);
    CHECK_STR_CONTAINS(e.msg[0], "not a regular file");
}

static void test_docs(void) {
    char path[1200];
    snprintf(path, sizeof path, "%s/docs/model-json.md", root);
    char *doc = check_slurp(path);
    CHECK_MSG(doc != NULL, "cannot read %s", path);
    if (!doc) return;
    const char *paths[128];
    int n = gen_schema_paths(paths, 128);
    CHECK(n > 40 && n <= 128);
    for (int i = 0; i < n && i < 128; i++) {
        char needle[160];
        snprintf(needle, sizeof needle, "`%s`", paths[i]);
        CHECK_MSG(strstr(doc, needle) != NULL, "docs/model-json.md does not document %s", paths[i]);
    }
    free(doc);
}

static void test_suggest(void) {
    CHECK_EQ_I64(gen_edit_distance("batch", "bacth"), 2);
    CHECK_EQ_I64(gen_edit_distance("", "abc"), 3);
    CHECK_EQ_I64(gen_edit_distance("Fusion", "fusion"), 0);
}

int main(int argc, char **argv) {
    if (argc > 1) snprintf(root, sizeof root, "%s", argv[1]);
    test_defaults();
    test_overrides();
    test_errors();
    test_bytes();
    test_round_trip();
    test_docs();
    test_suggest();
    return CHECK_DONE();
}
