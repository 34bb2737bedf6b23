/* avgen prep: UCF101 (or any <class>/<video> folder with UCF-style split lists) -> prepared videos
 * (runtime/avf.h) + manifest.jsonl + stats.json. See docs/prepared-data.md for the formats. */
#ifndef AVGEN_PREP_H
#define AVGEN_PREP_H

int gen_prep_main(int argc, char **argv); /* argv[0] is "prep" */
#endif
