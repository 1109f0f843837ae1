using System.Text.Json;

namespace Conveyor.Client;

/// <summary>Settings of a <see cref="ConveyorClient"/>, as <c>services.AddConveyor(o => …)</c> configures them.</summary>
public sealed class ConveyorClientOptions
{
    /// <summary>The name of the <see cref="HttpClient"/> that <c>AddConveyor</c> registers with IHttpClientFactory.</summary>
    public const string HttpClientName = "Conveyor";

    /// <summary>The server's address, e.g. <c>http://127.0.0.1:5080</c>. Required.</summary>
    public Uri? BaseAddress { get; set; }

    /// <summary>
    /// The API key to send as <c>Authorization: Bearer &lt;key&gt;</c>, for a server started with API keys; null sends none.
    /// A worker needs the consumer role, a producer the producer role.
    /// </summary>
    public string? ApiKey { get; set; }

    /// <summary>
    /// How typed payloads and results are (de)serialized when no <c>JsonTypeInfo</c> is passed: by default the web
    /// defaults (camelCase). Set <see cref="JsonSerializerOptions.TypeInfoResolver"/> to a source-generated context to
    /// avoid reflection.
    /// </summary>
    public JsonSerializerOptions SerializerOptions { get; set; } = new(JsonSerializerDefaults.Web);

    /// <summary>Throws with a sentence a person can act on when a setting cannot work.</summary>
    public void Validate()
    {
        if (BaseAddress is null || !BaseAddress.IsAbsoluteUri || (BaseAddress.Scheme != Uri.UriSchemeHttp && BaseAddress.Scheme != Uri.UriSchemeHttps))
        {
            throw new InvalidOperationException(
                "ConveyorClientOptions.BaseAddress must be the server's absolute http:// or https:// address, e.g. "
                + "services.AddConveyor(o => o.BaseAddress = new Uri(\"http://127.0.0.1:5080\")).");
        }

        if (SerializerOptions is null)
        {
            throw new InvalidOperationException("ConveyorClientOptions.SerializerOptions must not be null.");
        }
    }
}
