/* The resolved model description as canonical JSON: every field of the schema in table order, defaults
 * filled in, numbers printed in their shortest round-trip form. plan.json embeds it and its hash keys
 * generated folders, so the same description always prints the same bytes. */
#include "spec_internal.h"

#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_object *dbl(double v) {
    char buf[40];
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    /* Keep a decimal point or exponent so readers see a number, not an integer. */
    if (!strpbrk(buf, ".eEn")) strncat(buf, ".0", sizeof buf - strlen(buf) - 1);
    return json_object_new_double_s(v, buf);
}

static json_object *field_value(const gen_spec *s, const gen_field *f) {
    const char *base = (const char *)s;
    switch (f->type) {
    case F_INT: return json_object_new_int(*(const int *)(base + f->off));
    case F_I64: return json_object_new_int64(*(const int64_t *)(base + f->off));
    case F_NUM: return dbl(*(const double *)(base + f->off));
    case F_STR:
    case F_NAME: return json_object_new_string(base + f->off);
    case F_PATH: return s->backbone.weights[0] ? json_object_new_string(s->backbone.weights) : NULL;
    case F_ENUM: return json_object_new_string(f->choices[f->off ? *(const int *)(base + f->off) : 0]);
    case F_BOOL: return json_object_new_boolean(*(const bool *)(base + f->off));
    case F_NUM3: {
        json_object *a = json_object_new_array();
        for (int i = 0; i < 3; i++) json_object_array_add(a, dbl(((const double *)(base + f->off))[i]));
        return a;
    }
    case F_BETAS: {
        json_object *a = json_object_new_array();
        json_object_array_add(a, dbl(s->train.beta1));
        json_object_array_add(a, dbl(s->train.beta2));
        return a;
    }
    case F_BYTES: return json_object_new_int64(s->memory.budget);
    case F_LAYERS: {
        int all = s->fusion == FUSION_LAVISH;
        for (int i = 0; i < s->backbone.depth; i++) all &= s->adapter.on_layer[i];
        if (all && s->fusion == FUSION_LAVISH) return json_object_new_string("all");
        json_object *a = json_object_new_array();
        for (int i = 0; i < s->backbone.depth; i++)
            if (s->adapter.on_layer[i]) json_object_array_add(a, json_object_new_int(i));
        return a;
    }
    case F_SUBLAYERS: {
        json_object *a = json_object_new_array();
        if (s->adapter.attn) json_object_array_add(a, json_object_new_string("attn"));
        if (s->adapter.mlp) json_object_array_add(a, json_object_new_string("mlp"));
        return a;
    }
    }
    return NULL;
}

json_object *gen_spec_to_json_object(const gen_spec *s) {
    json_object *root = json_object_new_object();
    for (int i = 0; i < gen_n_fields; i++) {
        const gen_field *f = &gen_fields[i];
        const char *dot = strchr(f->path, '.');
        json_object *v = field_value(s, f);
        if (!dot) {
            json_object_object_add(root, f->path, v);
            continue;
        }
        char sec[64];
        snprintf(sec, sizeof sec, "%.*s", (int)(dot - f->path), f->path);
        json_object *o;
        if (!json_object_object_get_ex(root, sec, &o)) {
            o = json_object_new_object();
            json_object_object_add(root, sec, o);
        }
        json_object_object_add(o, dot + 1, v);
    }
    return root;
}

char *gen_spec_to_json(const gen_spec *s) {
    json_object *o = gen_spec_to_json_object(s);
    char *r = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                           JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
    return r;
}

uint64_t gen_resume_hash(const gen_spec *s) {
    gen_spec t = *s;
    t.train.epochs = 1;
    char *j = gen_spec_to_json(&t);
    uint64_t h = j ? gen_hash64(j, strlen(j), 0) : 0;
    free(j);
    return h;
}
