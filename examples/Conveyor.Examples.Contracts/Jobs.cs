using System.Text.Json;
using System.Text.Json.Serialization;

namespace Conveyor.Examples.Contracts;

public sealed record SendEmail(string To, string Subject);

public sealed record QuoteRequest(string Product, int Quantity);

public sealed record QuoteAnswer(string Product, int Quantity, decimal Total);

/// <summary>Source-generated serialization of the payloads, used by both sides.</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(SendEmail))]
[JsonSerializable(typeof(QuoteRequest))]
[JsonSerializable(typeof(QuoteAnswer))]
public sealed partial class ExampleJson : JsonSerializerContext;
