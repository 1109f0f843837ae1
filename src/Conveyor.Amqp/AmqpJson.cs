using System.Text.Json;
using System.Text.Json.Serialization;

namespace Conveyor.Amqp;

/// <summary>Error body of a reply: <c>{"error": "…", "state": "dead", "job_id": 42}</c>.</summary>
internal sealed record ErrorReply(string Error, string? State = null, long? JobId = null);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(string))]
[JsonSerializable(typeof(ErrorReply))]
[JsonSerializable(typeof(JsonElement))]
internal sealed partial class AmqpJson : JsonSerializerContext;
