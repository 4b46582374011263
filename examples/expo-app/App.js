import { StatusBar } from 'expo-status-bar';
import { useFonts } from 'expo-font';
import { Image, StyleSheet, Text, View } from 'react-native';

const BUILD_LABEL = 'example build v1';

export default function App() {
  const [fontsLoaded] = useFonts({
    OtagoSans: require('./assets/OtagoSans-Regular.ttf'),
  });
  return (
    <View style={styles.container}>
      <Image source={require('./assets/otago-logo.png')} style={styles.logo} />
      <Text style={fontsLoaded ? styles.otagoFont : null}>Hello from Otago</Text>
      <Text>{BUILD_LABEL}</Text>
      <Text>{process.env.EXPO_PUBLIC_API_URL ?? 'no EXPO_PUBLIC_API_URL'}</Text>
      <StatusBar style="auto" />
    </View>
  );
}

const styles = StyleSheet.create({
  container: {
    flex: 1,
    backgroundColor: '#fff',
    alignItems: 'center',
    justifyContent: 'center',
  },
  logo: { width: 32, height: 32, marginBottom: 12 },
  otagoFont: { fontFamily: 'OtagoSans' },
});
