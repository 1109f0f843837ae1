using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace Conveyor.Client;

/// <summary>
/// Processes one chunk of a submission and answers with its result. Resolved from a fresh DI scope for every chunk
/// (when registered with <c>services.AddConveyorChunkWorker&lt;THandler&gt;(queue)</c>), so scoped services are safe.
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item>return: the chunk is completed with the <see cref="ChunkOutput"/> (JSON, bytes or nothing, and optionally how
/// many operations it did);</item>
/// <item>throw: the attempt fails with the exception's message as the error; the server hands the chunk out again while
/// the submission's <c>max_chunk_retries</c> last, then fails the submission;</item>
/// <item>the <c>cancellationToken</c> fires when the chunk's lease is lost (the submission failed or was cancelled, a
/// heartbeat was refused) — the outcome is then not reported — and when the worker's shutdown grace period is over
/// (the chunk is then released for another consumer, its attempt not counted).</item>
/// </list>
/// </remarks>
public interface IChunkHandler
{
    Task<ChunkOutput> HandleAsync(ChunkContext chunk, CancellationToken cancellationToken);
}

/// <summary>What a chunk handler answers: a JSON result, a binary result, or none; and optionally the operations done.</summary>
public readonly record struct ChunkOutput
{
    private ChunkOutput(JsonElement? json, ReadOnlyMemory<byte>? bytes, long? operations)
    {
        Json = json;
        Bytes = bytes;
        Operations = operations;
    }

    /// <summary>Completed without a result (its results line reads <c>"result": null</c>).</summary>
    public static ChunkOutput None => default;

    public JsonElement? Json { get; }

    public ReadOnlyMemory<byte>? Bytes { get; }

    /// <summary>Operations the chunk did, for <see cref="SubmissionInfo.OperationsDone"/>; null counts the submission's chunk size.</summary>
    public long? Operations { get; init; }

    public static ChunkOutput FromJson(JsonElement result, long? operations = null) => new(result, null, operations);

    public static ChunkOutput FromBytes(ReadOnlyMemory<byte> result, long? operations = null) => new(null, result, operations);
}

/// <summary>The chunk a handler is working on: its identity, labels and body (already read from the object store for a reference).</summary>
public sealed class ChunkContext
{
    internal ChunkContext(ReservedChunk chunk, ReadOnlyMemory<byte>? body, IServiceProvider? services, CancellationToken cancellationToken)
    {
        Chunk = chunk;
        Body = body;
        Services = services;
        CancellationToken = cancellationToken;
    }

    internal ChunkContext WithServices(IServiceProvider services) => new(Chunk, Body, services, CancellationToken);

    /// <summary>The chunk as it was reserved (lease token, attempt, references).</summary>
    public ReservedChunk Chunk { get; }

    public long SubmissionId => Chunk.SubmissionId;

    /// <summary>The chunk's position in its submission, from 0; results come back in this order.</summary>
    public long Index => Chunk.Index;

    /// <summary>1 for the first reservation of this chunk.</summary>
    public int Attempt => Chunk.Attempt;

    public IReadOnlyDictionary<string, long> Labels => Chunk.Labels;

    /// <summary>The chunk's JSON data, when it was submitted as JSON.</summary>
    public JsonElement? Data => Chunk.Data;

    /// <summary>The chunk's bytes: its <c>data_base64</c>, or its body read from the object store. Null for JSON and empty chunks.</summary>
    public ReadOnlyMemory<byte>? Body { get; }

    /// <summary>The DI scope of this chunk (null for a worker built without DI).</summary>
    public IServiceProvider? Services { get; }

    /// <summary>The same token the handler receives: lease lost or shutdown.</summary>
    public CancellationToken CancellationToken { get; }

    /// <summary>
    /// The chunk's data as <typeparamref name="T"/>: its JSON <see cref="Data"/>, or its <see cref="Body"/> read as UTF-8 JSON
    /// (an object-store body). <c>default</c> for an empty chunk.
    /// </summary>
    public T? ReadData<T>(JsonTypeInfo<T> typeInfo)
    {
        ArgumentNullException.ThrowIfNull(typeInfo);
        if (Data is { ValueKind: not JsonValueKind.Null } data)
        {
            return data.Deserialize(typeInfo);
        }

        return Body is { Length: > 0 } body ? JsonSerializer.Deserialize(body.Span, typeInfo) : default;
    }
}
