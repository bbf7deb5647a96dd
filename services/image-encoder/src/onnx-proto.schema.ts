import protobuf from 'protobufjs';

/**
 * The subset of onnx.proto (onnx/onnx, IR version 8+) the encoder reads and writes.
 * Field numbers are those of the official schema; fields we never touch are left out,
 * which is safe because we only decode to inspect and never re-encode a decoded model
 * (see feature-output.graph.ts: edits are appended, so unknown fields survive).
 */
const ONNX_SUBSET = `
syntax = "proto3";
package onnx;

message AttributeProto {
  enum AttributeType { UNDEFINED = 0; FLOAT = 1; INT = 2; STRING = 3; TENSOR = 4; GRAPH = 5;
    FLOATS = 6; INTS = 7; STRINGS = 8; TENSORS = 9; GRAPHS = 10; }
  string name = 1;
  float f = 2;
  int64 i = 3;
  bytes s = 4;
  TensorProto t = 5;
  repeated float floats = 7;
  repeated int64 ints = 8;
  repeated bytes strings = 9;
  AttributeType type = 20;
}

message ValueInfoProto {
  string name = 1;
  TypeProto type = 2;
}

message NodeProto {
  repeated string input = 1;
  repeated string output = 2;
  string name = 3;
  string op_type = 4;
  repeated AttributeProto attribute = 5;
  string domain = 7;
}

message ModelProto {
  int64 ir_version = 1;
  string producer_name = 2;
  GraphProto graph = 7;
  repeated OperatorSetIdProto opset_import = 8;
  repeated StringStringEntryProto metadata_props = 14;
}

message StringStringEntryProto {
  string key = 1;
  string value = 2;
}

message GraphProto {
  repeated NodeProto node = 1;
  string name = 2;
  repeated TensorProto initializer = 5;
  repeated ValueInfoProto input = 11;
  repeated ValueInfoProto output = 12;
  repeated ValueInfoProto value_info = 13;
}

message TensorProto {
  repeated int64 dims = 1;
  int32 data_type = 2;
  repeated float float_data = 4;
  repeated int64 int64_data = 7;
  string name = 8;
  bytes raw_data = 9;
}

message TensorShapeProto {
  message Dimension {
    oneof value {
      int64 dim_value = 1;
      string dim_param = 2;
    }
  }
  repeated Dimension dim = 1;
}

message TypeProto {
  message Tensor {
    int32 elem_type = 1;
    TensorShapeProto shape = 2;
  }
  oneof value {
    Tensor tensor_type = 1;
  }
}

message OperatorSetIdProto {
  string domain = 1;
  int64 version = 2;
}
`;

const root = protobuf.parse(ONNX_SUBSET, { keepCase: true }).root;
export const ModelProtoType = root.lookupType('onnx.ModelProto');

/** TensorProto.DataType values we use. */
export const ONNX_FLOAT = 1;
export const ONNX_UINT8 = 2;
export const ONNX_INT8 = 3;
export const ONNX_INT32 = 6;
export const ONNX_INT64 = 7;

/** Plain-object views of the decoded messages (int64 as numbers, bytes as Uint8Array). */
export interface OnnxDim { dim_value?: number; dim_param?: string }
export interface OnnxValueInfo {
  name: string;
  type?: { tensor_type?: { elem_type?: number; shape?: { dim?: OnnxDim[] } } };
}
export interface OnnxAttribute {
  name: string;
  type?: number;
  f?: number;
  i?: number;
  s?: Uint8Array;
  floats?: number[];
  ints?: number[];
}
export interface OnnxNode {
  input?: string[];
  output?: string[];
  name?: string;
  op_type: string;
  attribute?: OnnxAttribute[];
  domain?: string;
}
export interface OnnxTensor {
  name: string;
  dims?: number[];
  data_type: number;
  raw_data?: Uint8Array;
  float_data?: number[];
  int64_data?: number[];
}
export interface OnnxGraph {
  node?: OnnxNode[];
  name?: string;
  initializer?: OnnxTensor[];
  input?: OnnxValueInfo[];
  output?: OnnxValueInfo[];
  value_info?: OnnxValueInfo[];
}
export interface OnnxModel {
  ir_version?: number;
  producer_name?: string;
  graph?: OnnxGraph;
  opset_import?: { domain?: string; version: number }[];
  metadata_props?: { key: string; value: string }[];
}

/** Decodes a model for inspection; large weight buffers are views, not copies. */
export function decodeModel(bytes: Uint8Array): OnnxModel {
  const msg = ModelProtoType.decode(bytes);
  return ModelProtoType.toObject(msg, { longs: Number, arrays: false, defaults: false, oneofs: false }) as OnnxModel;
}

export function encodeModel(model: OnnxModel): Uint8Array {
  const err = ModelProtoType.verify(model);
  if (err) throw new Error(`invalid ONNX model object: ${err}`);
  return ModelProtoType.encode(ModelProtoType.fromObject(model)).finish();
}
