import { Type, type Static } from '@sinclair/typebox';
import { RelativePath, schemaId } from './common.schemas.js';

/*
 * Files the `doppel` CLI reads back from people: the actions exported by the HTML report
 * (and the JSON scan report itself, which `apply` accepts too), the undo manifest of
 * `apply --yes`, and the truth file of `doppel eval`.
 */

const FileStamp = Type.Object({ bytes: Type.Integer({ minimum: 0 }), mtime_ms: Type.Number({ minimum: 0 }) });

export const ACTIONS_KIND = 'doppel-actions';
export const ActionsFile = Type.Object(
  {
    kind: Type.Literal(ACTIONS_KIND),
    version: Type.Literal(1),
    root: Type.String({ minLength: 1 }),
    report_generated_at: Type.Optional(Type.String()),
    groups: Type.Array(Type.Object({
      group: Type.Integer({ minimum: 0 }),
      /** remove: move/delete `remove`; keep-all / not-duplicates: touch nothing, remember the decision. */
      decision: Type.Union([Type.Literal('remove'), Type.Literal('keep-all'), Type.Literal('not-duplicates')]),
      keep: Type.Array(RelativePath),
      remove: Type.Array(RelativePath),
    }, { additionalProperties: false })),
    /** Size and mtime of every file named above, as the scan saw them. */
    files: Type.Record(Type.String(), FileStamp),
  },
  { $id: schemaId('cli/actions-file'), additionalProperties: false },
);
export type ActionsFile = Static<typeof ActionsFile>;

export const UNDO_KIND = 'doppel-undo';
export const UndoManifest = Type.Object(
  {
    kind: Type.Literal(UNDO_KIND),
    version: Type.Literal(1),
    created_at: Type.String(),
    root: Type.String({ minLength: 1 }),
    quarantine: Type.String({ minLength: 1 }),
    moves: Type.Array(Type.Object({
      relative_path: RelativePath,
      bytes: Type.Integer({ minimum: 0 }),
      mtime_ms: Type.Number({ minimum: 0 }),
      /** False until the move happened (the manifest is written before the first move). */
      moved: Type.Boolean(),
    }, { additionalProperties: false })),
  },
  { $id: schemaId('cli/undo-manifest'), additionalProperties: false },
);
export type UndoManifest = Static<typeof UndoManifest>;

/** `{"truth": {"<query>": "<indexed file>" | null}}`, paths relative to the queries and index folders. */
export const TruthFile = Type.Object(
  { truth: Type.Record(Type.String({ minLength: 1 }), Type.Union([Type.String({ minLength: 1 }), Type.Null()])) },
  { $id: schemaId('cli/truth-file'), additionalProperties: true },
);
export type TruthFile = Static<typeof TruthFile>;
