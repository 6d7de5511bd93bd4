/** `ferry reset <stream>`: forget the stream's checkpoint, so the next run reads from `initial` again. */
import { Effect } from "effect"
import * as FileCheckpoints from "../../checkpoint/FileCheckpoints.js"
import { CheckpointStore, keyOf } from "../../CheckpointStore.js"
import { ExitCode } from "../../domain/Errors.js"
import { Sink } from "../../Sink.js"
import type { Command } from "../Args.js"
import * as Wiring from "../Wiring.js"
import { type CommandEnvironment, notCreatedYet, selectStreams, withConfig } from "./CommandEnvironment.js"

export const reset = (command: Extract<Command, { _tag: "reset" }>, environment: CommandEnvironment) =>
  withConfig(command.config, environment, (config) =>
    Effect.gen(function*() {
      const [stream] = yield* selectStreams(config, [command.stream])
      if (!Wiring.databaseExists(config, environment)) {
        // No embedded database, so no run is in progress (a run creates it first): only a file store
        // can hold a checkpoint.
        if (config.checkpoint.store !== "file") {
          environment.stdout(
            `reset ${stream!.name}: nothing to reset, the ${Wiring.describeDatabase(config, environment)} is ${notCreatedYet}`
          )
          return ExitCode.Ok
        }
        yield* Effect.flatMap(CheckpointStore, (store) => store.clear(keyOf(stream!))).pipe(
          Effect.provide(FileCheckpoints.layer(config.checkpoint.path))
        )
      } else {
        yield* Effect.scoped(Effect.gen(function*() {
          const sink = yield* Sink
          const store = yield* CheckpointStore
          // Not while a run of the stream is in progress: it would save its cursor right back.
          yield* sink.lock(stream!)
          yield* store.clear(keyOf(stream!))
        })).pipe(Effect.provide(Wiring.stateLayer(config, environment)))
      }
      environment.stdout(
        `reset ${stream!.name}: the next run reads from ${stream!.source.incremental?.initial ?? "the beginning"}`
      )
      return ExitCode.Ok
    }))
