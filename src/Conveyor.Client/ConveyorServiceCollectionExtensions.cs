using Conveyor.Client;
using Conveyor.Client.Internal;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

// In the DI namespace, as is the convention, so `services.AddConveyor(…)` needs no extra using.
namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the Conveyor producer client and worker host.</summary>
public static class ConveyorServiceCollectionExtensions
{
    /// <summary>
    /// Registers a singleton <see cref="ConveyorClient"/> that sends through IHttpClientFactory's client named
    /// <see cref="ConveyorClientOptions.HttpClientName"/>. Returns that client's builder, to add handlers (auth headers,
    /// resilience) or set its timeout.
    /// </summary>
    public static IHttpClientBuilder AddConveyor(this IServiceCollection services, Action<ConveyorClientOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.AddOptions<ConveyorClientOptions>().Configure(configure);
        services.TryAddSingleton(provider => new ConveyorClient(
            provider.GetRequiredService<IHttpClientFactory>(), provider.GetRequiredService<IOptions<ConveyorClientOptions>>().Value));
        return services.AddHttpClient(ConveyorClientOptions.HttpClientName);
    }

    /// <summary>
    /// Adds the worker host (a hosted service) and returns a builder to register handlers with. It uses the
    /// <see cref="ConveyorClient"/> from DI (from <see cref="AddConveyor"/>, or one registered by hand). Calling it
    /// again adds to the same host.
    /// </summary>
    public static ConveyorWorkerBuilder AddConveyorWorker(this IServiceCollection services, Action<ConveyorWorkerOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = services.AddOptions<ConveyorWorkerOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, ConveyorWorkerService>());
        return new ConveyorWorkerBuilder(services);
    }
}
