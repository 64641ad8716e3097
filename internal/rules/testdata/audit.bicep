param workspaceId string

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  name: 'auditedbicep01'
  location: 'westeurope'
  sku: {
    name: 'Premium'
  }
}

resource audit 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'audit'
  scope: registry
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        categoryGroup: 'audit'
        enabled: true
      }
    ]
  }
}

resource other 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  name: 'unauditedbicep01'
  location: 'westeurope'
  sku: {
    name: 'Premium'
  }
}
