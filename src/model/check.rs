//! Checks of the protobuf before tract sees it. tract meets some malformed graphs with a panic
//! (a graph output nothing defines) and trusts a tensor's dims when it sizes memory; here such a
//! file is refused with what is wrong, named.

use std::collections::HashSet;

use tract_onnx::pb;

use crate::files::MODEL_CAP;

/// What is wrong with the main graph of a model, if anything: every node input and graph output
/// is defined, and every tensor is sound (see [`check_tensor`]).
pub(super) fn check_graph(graph: &pb::GraphProto) -> Result<(), String> {
    let mut known: HashSet<&str> = graph.input.iter().map(|i| i.name.as_str()).collect();
    known.extend(graph.initializer.iter().map(|t| t.name.as_str()));
    known.extend(
        graph
            .node
            .iter()
            .flat_map(|n| n.output.iter().map(String::as_str)),
    );
    // An empty name is an omitted optional input or output, never a value.
    known.remove("");
    for (ix, n) in graph.node.iter().enumerate() {
        if let Some(i) = n
            .input
            .iter()
            .find(|i| !i.is_empty() && !known.contains(i.as_str()))
        {
            return Err(format!(
                "node `{}` ({}) reads `{i}`, which is no graph input, initializer or node output",
                node_name(n, ix),
                n.op_type
            ));
        }
    }
    for o in &graph.output {
        if !known.contains(o.name.as_str()) {
            return Err(format!(
                "graph output `{}` is no graph input, initializer or node output",
                o.name
            ));
        }
    }
    check_tensors(graph)
}

/// The name reports use for a node (unnamed nodes as in the typed graph).
fn node_name(n: &pb::NodeProto, ix: usize) -> String {
    if n.name.is_empty() {
        format!("{}_{ix}", n.op_type)
    } else {
        n.name.clone()
    }
}

/// Every tensor of `graph`: initializers and attribute values, in subgraphs too.
fn check_tensors(graph: &pb::GraphProto) -> Result<(), String> {
    for t in &graph.initializer {
        check_tensor(t).map_err(|e| format!("initializer `{}`: {e}", t.name))?;
    }
    for (ix, n) in graph.node.iter().enumerate() {
        for a in &n.attribute {
            let at = |e: String| format!("node `{}` attribute `{}`: {e}", node_name(n, ix), a.name);
            for t in a.t.iter().chain(&a.tensors) {
                check_tensor(t).map_err(at)?;
            }
            for g in a.g.iter().chain(&a.graphs) {
                check_tensors(g).map_err(at)?;
            }
        }
    }
    Ok(())
}

/// Bytes per element of the fixed-size ONNX element types.
fn element_bytes(data_type: i32) -> Option<u64> {
    use super::types::code::*;
    Some(match data_type {
        UINT8 | INT8 | BOOL => 1,
        UINT16 | INT16 | FLOAT16 | BFLOAT16 => 2,
        FLOAT | INT32 | UINT32 => 4,
        INT64 | DOUBLE | UINT64 | COMPLEX64 => 8,
        COMPLEX128 => 16,
        _ => return None,
    })
}

/// A tensor's dims are non-negative, their product fits, its size is within the cap of a model,
/// and the data it carries (raw bytes or typed values) is exactly what the dims need. External
/// data is left to tract, which checks its length against the dims before allocating.
fn check_tensor(t: &pb::TensorProto) -> Result<(), String> {
    let dims = &t.dims;
    let mut numel: u64 = 1;
    for &d in dims {
        let d = u64::try_from(d).map_err(|_| format!("dims {dims:?}: {d} is negative"))?;
        numel = numel
            .checked_mul(d)
            .ok_or_else(|| format!("dims {dims:?}: the element count overflows"))?;
    }
    let size = element_bytes(t.data_type);
    let bytes = numel.saturating_mul(size.unwrap_or(1));
    if bytes > MODEL_CAP {
        return Err(format!(
            "dims {dims:?}: {bytes} bytes, more than the 2 GiB a model may hold"
        ));
    }
    let dtype = super::dtype_name(t.data_type);
    if !t.raw_data.is_empty() {
        return match size {
            Some(_) if t.raw_data.len() as u64 != bytes => Err(format!(
                "dims {dims:?} of {dtype} need {bytes} bytes, raw_data has {}",
                t.raw_data.len()
            )),
            // Strings have no raw form (tract would panic on one).
            None if t.data_type == super::types::code::STRING => {
                Err("a string tensor with raw_data".into())
            }
            _ => Ok(()),
        };
    }
    let external = t.data_location == Some(pb::tensor_proto::DataLocation::External as i32);
    if external || (size.is_none() && t.data_type != super::types::code::STRING) {
        return Ok(());
    }
    // A tensor keeps its values in one typed field; complex numbers take two values each.
    let carried: usize = [
        t.float_data.len(),
        t.int32_data.len(),
        t.string_data.len(),
        t.int64_data.len(),
        t.double_data.len(),
        t.uint64_data.len(),
    ]
    .iter()
    .sum();
    let per = if matches!(t.data_type, 14 | 15) { 2 } else { 1 };
    if carried as u64 != numel * per {
        return Err(format!(
            "dims {dims:?} of {dtype} need {} values, the tensor carries {carried}",
            numel * per
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(dims: &[i64], values: usize) -> pb::TensorProto {
        pb::TensorProto {
            name: "w".into(),
            dims: dims.to_vec(),
            data_type: 1,
            float_data: vec![0.5; values],
            ..Default::default()
        }
    }

    #[test]
    fn tensors_need_sane_dims_and_matching_data() {
        assert_eq!(check_tensor(&tensor(&[2, 3], 6)), Ok(()));
        assert_eq!(check_tensor(&tensor(&[], 1)), Ok(()));
        assert_eq!(check_tensor(&tensor(&[0, 1 << 40], 0)), Ok(()));
        let e = |t| check_tensor(&t).unwrap_err();
        assert!(e(tensor(&[2, -3], 6)).contains("-3 is negative"));
        assert!(e(tensor(&[1 << 40, 1 << 40], 6)).contains("overflows"));
        assert!(e(tensor(&[1 << 24, 1 << 24], 6)).contains("more than the 2 GiB"));
        assert!(e(tensor(&[2, 3], 5)).contains("need 6 values, the tensor carries 5"));
        assert!(e(tensor(&[4], 0)).contains("carries 0"));
        let mut raw = tensor(&[2], 0);
        raw.raw_data = vec![0; 7];
        assert!(e(raw.clone()).contains("need 8 bytes, raw_data has 7"));
        raw.raw_data = vec![0; 8];
        assert_eq!(check_tensor(&raw), Ok(()));
    }
}
