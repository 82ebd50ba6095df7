"""Network speed, ours vs Meta's sam2 1.1.0, same random weights, CPU float32.

One JSON line ("case": "model"): seconds for the image encoder on one
1 x 3 x S x S image (ours ``encode_image``, the reference ``forward_image``:
trunk, neck and the decoder's two high-resolution convolutions in both), and
seconds for one memory-attention step reading 7 spatial memories (1
conditioning frame + 6 recent frames) and 16 object pointers (ours
``model.condition`` with a ``MemoryReadout`` from ``read_memory``, the
reference ``_prepare_memory_conditioned_features``). Medians over
alternating repeats; ``ratio`` = ours / reference (< 1: we are faster).

    python benchmarks/bench_model.py            # tiny at 1024
    python benchmarks/bench_model.py --quick    # tiny at 128, for the smoke test
"""

from __future__ import annotations

import _common  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads)
import argparse

import torch

from _common import (
    add_threads_option,
    apply_threads,
    MODEL,
    alternate,
    build_pair,
    emit,
    log,
    median,
    paired_ratio,
    r6,
    ratio,
    settings,
)


def _seq_first(x: torch.Tensor) -> torch.Tensor:
    """B x C x H x W -> HW x B x C (the reference's token layout)."""
    return x.flatten(2).permute(2, 0, 1)


class _Entry:
    def __init__(self, features: torch.Tensor, obj_ptr: torch.Tensor) -> None:
        self.features, self.obj_ptr = features, obj_ptr


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny run for the smoke test (128 px, 1 repeat)")
    p.add_argument("--size", type=int, default=None, help="model image size (default 1024; 128 with --quick)")
    p.add_argument("--encoder-repeats", type=int, default=None, help="default 5 (1 with --quick)")
    p.add_argument("--attention-repeats", type=int, default=None, help="default 5 (2 with --quick)")
    add_threads_option(p)
    args = p.parse_args(argv)
    apply_threads(args.threads)
    size = args.size or (128 if args.quick else 1024)
    enc_repeats = args.encoder_repeats or (1 if args.quick else 5)
    att_repeats = args.attention_repeats or (2 if args.quick else 5)

    torch.set_grad_enabled(False)
    log(f"building {MODEL} at {size} (ours and reference, same random weights)")
    ours, ref = build_pair(MODEL, size, seed=0)
    gen = torch.Generator().manual_seed(1)
    image = torch.randn(1, 3, size, size, generator=gen)

    with torch.inference_mode():
        # ---------------------------------------------------------- encoder
        log("image encoder: warm-up")
        feats = ours.encode_image(image)
        ref_bb = ref.forward_image(image)
        enc_gap = (feats.embedding - ref_bb["backbone_fpn"][2]).abs().max().item()
        log(f"image encoder: {enc_repeats} alternating repeats")
        enc_ours, enc_ref = alternate(
            lambda: ours.encode_image(image), lambda: ref.forward_image(image), enc_repeats
        )
        log(f"  ours {enc_ours}  reference {enc_ref}")

        # ------------------------------------------------- memory attention
        s = size // 16
        frame, num_frames = 20, 40
        mem_shape = (1, ours.mem_dim, s, s)
        cond = {0: _Entry(torch.randn(mem_shape, generator=gen), torch.randn(1, ours.hidden_dim, generator=gen))}
        recent = {
            t: _Entry(torch.randn(mem_shape, generator=gen), torch.randn(1, ours.hidden_dim, generator=gen))
            for t in range(frame - 15, frame)
        }
        from napari_sam2.model import read_memory

        readout = read_memory(
            frame, cond, recent, config=ours.config.tracking, num_frames=num_frames, reverse=False
        )
        n_mem, n_ptr = len(readout.spatial), len(readout.pointers)
        assert (n_mem, n_ptr) == (7, 16), (n_mem, n_ptr)
        mem_pos = ref._encode_new_memory(
            [_seq_first(ref_bb["backbone_fpn"][2])],
            [(s, s)],
            torch.zeros(1, 1, size, size),
            torch.ones(1, 1),
            is_mask_from_pts=True,
        )[1]

        def ref_entry(e: _Entry) -> dict:
            return {"maskmem_features": e.features, "maskmem_pos_enc": mem_pos, "obj_ptr": e.obj_ptr}

        output_dict = {
            "cond_frame_outputs": {t: ref_entry(e) for t, e in cond.items()},
            "non_cond_frame_outputs": {t: ref_entry(e) for t, e in recent.items()},
        }
        cur_feats = [_seq_first(ref_bb["backbone_fpn"][2])]
        cur_pos = [_seq_first(ref_bb["vision_pos_enc"][2])]
        embedding = feats.embedding

        def run_ours():
            # the readout is rebuilt each step, as the engine does
            r = read_memory(frame, cond, recent, config=ours.config.tracking, num_frames=num_frames, reverse=False)
            return ours.condition(embedding, r)

        def run_ref():
            return ref._prepare_memory_conditioned_features(
                frame_idx=frame,
                is_init_cond_frame=False,
                current_vision_feats=cur_feats,
                current_vision_pos_embeds=cur_pos,
                feat_sizes=[(s, s)],
                output_dict=output_dict,
                num_frames=num_frames,
                track_in_reverse=False,
            )

        log("memory attention: warm-up")
        att_gap = (run_ours() - run_ref()).abs().max().item()
        log(f"memory attention: {att_repeats} alternating repeats")
        att_ours, att_ref = alternate(run_ours, run_ref, att_repeats)
        log(f"  ours {att_ours}  reference {att_ref}")

    e_o, e_r = median(enc_ours), median(enc_ref)
    a_o, a_r = median(att_ours), median(att_ref)
    emit(
        {
            "case": "model",
            **settings(size, device="cpu", dtype="float32", memories=n_mem, object_pointers=n_ptr),
            "repeats": {"encoder": enc_repeats, "memory_attention": att_repeats},
            "ours": {"encoder_s": r6(e_o), "memory_attention_s": r6(a_o)},
            "reference": {"encoder_s": r6(e_r), "memory_attention_s": r6(a_r)},
            "ratio": {"encoder": ratio(e_o, e_r), "memory_attention": ratio(a_o, a_r)},
            "ratio_paired_median": {
                "encoder": paired_ratio(enc_ours, enc_ref),
                "memory_attention": paired_ratio(att_ours, att_ref),
            },
            "samples": {
                "encoder_ours_s": [r6(x) for x in enc_ours],
                "encoder_reference_s": [r6(x) for x in enc_ref],
                "memory_attention_ours_s": [r6(x) for x in att_ours],
                "memory_attention_reference_s": [r6(x) for x in att_ref],
            },
            "max_abs_diff": {"encoder": enc_gap, "memory_attention": att_gap},
        }
    )


if __name__ == "__main__":
    main()
