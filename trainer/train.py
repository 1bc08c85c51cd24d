#!/usr/bin/env python3
"""hpctl trainer: two-stage Keras transfer learning for one stage of an hpctl run.

    train.py train    --spec RUN/spec.resolved.json --stage NAME --run-dir RUN
    train.py evaluate --spec RUN/spec.resolved.json --stage NAME --run-dir RUN
    train.py predict  --model CHECKPOINT [--spec SPEC] [--jsonl] [--image-list FILE] IMAGE...

Exit codes: 0 done, 1 failed, 2 bad input (spec, data, weights), 99 stopped by SIGUSR2
after saving state (the job requeues). See docs/run-directory.md and trainer/README.md.
"""

import argparse
import json
import os
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from hpctl_trainer import (EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, EXIT_PREEMPTED,  # noqa: E402
                           InputError, Preempted)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="train.py", description="hpctl's Keras trainer")
    sub = p.add_subparsers(dest="command")
    for name, helptext in (("train", "train one stage (then evaluate it)"),
                           ("evaluate", "evaluate a stage's best checkpoint on the val set")):
        sp = sub.add_parser(name, help=helptext)
        sp.add_argument("--spec", required=True, help="spec.resolved.json")
        sp.add_argument("--stage", required=True, help="stage name")
        sp.add_argument("--run-dir", default=None, help="run directory (default: the spec's folder)")
    sp = sub.add_parser("predict", help="classify images with a checkpoint")
    sp.add_argument("--model", required=True, help="checkpoint file (checkpoints/best.*)")
    sp.add_argument("--spec", default=None, help="spec.resolved.json (when no model-info.json)")
    sp.add_argument("--jsonl", action="store_true",
                    help="one JSON object per image (image, label, class_index, probability, "
                         "probabilities, logit), then {\"done\": N}; what hpctl predict reads")
    sp.add_argument("--image-list", default=None,
                    help="a file naming one image per line, read after the IMAGE arguments")
    sp.add_argument("images", nargs="*", metavar="IMAGE")
    args = p.parse_args(argv)
    if not args.command:
        p.print_usage(sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    if args.command == "predict":
        if args.image_list:
            with open(args.image_list) as f:
                args.images += [line.rstrip("\n") for line in f if line.rstrip("\n")]
        if not args.images:
            p.error("predict needs at least one IMAGE (or --image-list)")
    return args


TRIAL = "{trial}"


def with_trial(path):
    """A sweep's job script serves every trial: hpctl writes {trial} in --spec and
    --run-dir, and the job script sets HPCTL_TRIAL to the array task's trial."""
    if path is None or TRIAL not in path:
        return path
    trial = os.environ.get("HPCTL_TRIAL", "")
    if not trial.isdigit():
        raise InputError("%s names a sweep's trial, but HPCTL_TRIAL is %r, not a trial number"
                         % (path, trial))
    return path.replace(TRIAL, trial)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    callbacks = None
    try:
        from hpctl_trainer import callbacks
        from hpctl_trainer import evaluate
        from hpctl_trainer import spec as specmod
        from hpctl_trainer import stage

        callbacks.install_signal_handler()
        if args.command == "predict":
            spec = specmod.load(args.spec) if args.spec else None
            n = 0
            for r in evaluate.predict_records(args.model, args.images, spec):
                if args.jsonl:
                    print(json.dumps(r, sort_keys=True))
                else:
                    print("%s\t%s\t%.4f" % (r["image"], r["label"], r["probability"]))
                n += 1
                sys.stdout.flush()
            if args.jsonl:
                # The end mark: a reader following this output (a job's log) knows every
                # line has come, whatever the scheduler says of the job yet.
                print(json.dumps({"done": n}))
            sys.stdout.flush()
            return EXIT_OK
        args.spec, args.run_dir = with_trial(args.spec), with_trial(args.run_dir)
        spec = specmod.load(args.spec)
        specmod.stage(spec, args.stage)
        run_dir = os.path.abspath(args.run_dir or os.path.dirname(os.path.abspath(args.spec)))
        if args.command == "train":
            m = stage.run(spec, args.stage, run_dir)
            print("trainer: stage %s done: best val accuracy %.4f (epoch %s), %d epochs"
                  % (args.stage, m["best_val_accuracy"] or 0.0, m["best_epoch"], m["epochs_run"]))
        else:
            ev = evaluate.evaluate(spec, args.stage, run_dir)
            print("trainer: stage %s: val accuracy %.4f on %d images"
                  % (args.stage, ev["accuracy"] or 0.0, ev["num_images"]))
        sys.stdout.flush()
        return EXIT_OK
    except InputError as e:
        print("trainer: error: %s" % e, file=sys.stderr)
        return EXIT_BAD_INPUT
    except Preempted:
        from hpctl_trainer import distribute
        distribute.mark_preempted()
        print("trainer: preempted (SIGUSR2); state of the last completed epoch saved; exit %d"
              % EXIT_PREEMPTED, file=sys.stderr)
        return EXIT_PREEMPTED
    except Exception:
        traceback.print_exc()
        if callbacks is not None and callbacks.stop_requested():
            from hpctl_trainer import distribute
            distribute.mark_preempted()
            print("trainer: failed after SIGUSR2; exiting %d so the job is requeued" % EXIT_PREEMPTED,
                  file=sys.stderr)
            return EXIT_PREEMPTED
        print("trainer: %s failed" % ("training" if args.command == "train" else args.command), file=sys.stderr)
        return EXIT_FAILED


def exit_process(code):
    """Exit with code. A worker of a multi-worker run leaves without the interpreter's
    teardown: TF 2.7's collective runtime was seen aborting it ("terminate called without
    an active exception", SIGABRT) after the stage had finished and every file was written,
    and srun --kill-on-bad-exit would then fail the stage that had succeeded."""
    if distributed_run():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def distributed_run():
    return "," in os.environ.get("HPCTL_WORKERS", "")


if __name__ == "__main__":
    exit_process(main())
